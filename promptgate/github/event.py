"""From the Actions environment (INPUT_*, GITHUB_* and the event payload) to what the gate needs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import git
from git.exc import BadName, GitCommandError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from promptgate.changes import open_repo
from promptgate.errors import BadInput

ZERO_SHA = "0" * 40
_SHA = r"^[0-9a-f]{40}([0-9a-f]{24})?$"  # SHA-1, or SHA-256 in a repository that uses it
SUPPORTED_EVENTS = (
    "pull_request",
    "pull_request_target",
    "merge_group",
    "workflow_dispatch",
    "push",
)


class ActionInputs(BaseModel):
    """The inputs of action.yml. GitHub passes each as INPUT_<NAME>, upper-cased, hyphens kept."""

    model_config = ConfigDict(frozen=True)
    config: str = "promptgate.yaml"
    github_token: str = ""
    base: str = ""
    head: str = ""
    all: bool = False
    comment: bool = True
    fail_on_regression: bool = True
    mlflow_tracking_uri: str = ""
    shard: str = ""
    merge: str = ""


def read_inputs(env: Mapping[str, str]) -> ActionInputs:
    def text(name: str, default: str = "") -> str:
        return env.get(f"INPUT_{name.upper()}", default).strip() or default

    def flag(name: str, default: bool) -> bool:
        raw = text(name).lower()
        if not raw:
            return default
        if raw in ("true", "false"):
            return raw == "true"
        raise BadInput(f"input '{name}' must be true or false, got '{raw}'", file="action inputs")

    return ActionInputs(
        config=text("config", "promptgate.yaml"),
        github_token=text("github-token"),
        base=text("base"),
        head=text("head"),
        all=flag("all", False),
        comment=flag("comment", True),
        fail_on_regression=flag("fail-on-regression", True),
        mlflow_tracking_uri=text("mlflow-tracking-uri"),
        shard=text("shard"),
        merge=text("merge"),
    )


class EventContext(BaseModel):
    """What the triggering event says to compare, and where to report."""

    model_config = ConfigDict(frozen=True)
    event_name: str
    base: str | None
    head: str | None
    all_prompts: bool = False
    pr_number: int | None = None
    repository: str
    actor: str = ""
    run_url: str | None = None
    # a push to the repository's default branch: what was merged (the Prompt Registry's cue)
    pushed_default_branch: bool = False
    labels: tuple[str, ...] = ()  # the pull request's labels (the override label's cue)
    pr_title: str = ""
    pr_url: str = ""
    # a push that created the ref (`before` all zeros): its base may not exist (new_ref_base)
    created_ref: bool = False
    # set when there is nothing to judge (a deleted ref): the step passes with this notice
    nothing_to_judge: str | None = None

    @property
    def is_pull_request(self) -> bool:
        """Whether there is a PR to comment on and to ask about an override label: a merge
        queue's group is judged as it is, with no comment and no GitHub API call."""
        return self.pr_number is not None and self.event_name != "merge_group"


def read_event(env: Mapping[str, str], inputs: ActionInputs) -> EventContext:
    name = env.get("GITHUB_EVENT_NAME", "")
    payload = _payload(env)
    common: dict[str, Any] = {
        "event_name": name,
        "repository": env.get("GITHUB_REPOSITORY", ""),
        "actor": env.get("GITHUB_ACTOR", ""),
        "run_url": _run_url(env),
    }
    if name in ("pull_request", "pull_request_target"):
        pull = payload.get("pull_request") or {}
        try:
            base, head, number = pull["base"]["sha"], pull["head"]["sha"], int(pull["number"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(
                "the pull_request payload lacks base/head shas or a number",
                file="GITHUB_EVENT_PATH",
            ) from exc
        labels = tuple(
            str(label["name"])
            for label in pull.get("labels") or []
            if isinstance(label, dict) and "name" in label
        )
        return EventContext(
            base=inputs.base or base,
            head=inputs.head or head,
            pr_number=number,
            labels=labels,
            pr_title=str(pull.get("title") or ""),
            pr_url=str(pull.get("html_url") or ""),
            **common,
        )
    if name == "merge_group":
        return _merge_group(payload, inputs, common)
    if name == "workflow_dispatch":
        dispatched = payload.get("inputs") or {}
        base = inputs.base or str(dispatched.get("base") or "") or _default_branch(payload)
        head = inputs.head or str(dispatched.get("head") or "") or env.get("GITHUB_SHA") or None
        every = inputs.all or str(dispatched.get("all", "")).lower() == "true"
        return EventContext(base=base, head=head, all_prompts=every, **common)
    if name == "push":
        before, after = (
            str(payload.get("before") or ""),
            str(payload.get("after") or env.get("GITHUB_SHA", "")),
        )
        if payload.get("deleted") is True or after == ZERO_SHA:
            ref = str(payload.get("ref") or "the ref")
            return EventContext(
                base=None,
                head=None,
                nothing_to_judge=f"this push deleted {ref}: there is nothing to judge",
                **common,
            )
        if not after:
            raise BadInput("the push payload has no 'after' sha", file="GITHUB_EVENT_PATH")
        default_branch = (payload.get("repository") or {}).get("default_branch")
        pushed_default = (
            bool(default_branch) and payload.get("ref") == f"refs/heads/{default_branch}"
        )
        if before and before != ZERO_SHA:
            base = before
        else:  # a new branch: compare with the default branch it was cut from, if it is not that
            default = _default_branch(payload)
            base = f"{after}~1" if pushed_default or default is None else default
        return EventContext(
            base=inputs.base or base,
            head=inputs.head or after,
            pushed_default_branch=pushed_default,
            created_ref=not (before and before != ZERO_SHA) and not inputs.base,
            **common,
        )
    raise BadInput(
        f"the '{name or '(none)'}' event is not supported; run promptgate on "
        f"{', '.join(SUPPORTED_EVENTS)} (see the README's workflow example)",
        file="GITHUB_EVENT_NAME",
    )


class _MergeGroup(BaseModel):
    """The fields of the `merge_group` webhook payload's `merge_group` that we use (GitHub's
    schema requires head_sha, head_ref, base_sha, base_ref and head_commit)."""

    head_sha: str = Field(pattern=_SHA)
    base_sha: str = Field(pattern=_SHA)
    base_ref: str = ""


def _merge_group(
    payload: dict[str, Any], inputs: ActionInputs, common: dict[str, Any]
) -> EventContext:
    """A merge queue's group: its head (the queued PRs merged onto the target branch) against
    the target's commit it was built on, as a PR is gated; no PR, so no comment."""
    try:
        group = _MergeGroup.model_validate(payload.get("merge_group"))
    except ValidationError:
        raise BadInput(
            "the merge_group payload lacks a merge_group object with head_sha and base_sha "
            "(40-hex commit shas)",
            file="GITHUB_EVENT_PATH",
        ) from None
    return EventContext(
        base=inputs.base or group.base_sha, head=inputs.head or group.head_sha, **common
    )


def new_ref_base(event: EventContext, repo_dir: Path) -> EventContext:
    """A push that created its ref, checked against the checkout: a history that starts in this
    push (a first commit with no parent, or an orphan branch that shares no commit with the
    default branch it would be compared with) has no earlier version of any prompt, so there is
    nothing to compare and nothing to judge. Anything else is left to the gate, which names a
    missing ref and asks for `fetch-depth: 0` where the clone is shallow."""
    if not event.created_ref or event.head is None or event.base is None:
        return event
    repo = open_repo(repo_dir)
    head = _commit(repo, event.head)
    if head is None:
        return event
    if not head.parents:  # read from the commit itself: reliable in a shallow clone too
        reason = f"{event.head[:12]} has no parent: this push starts a new history"
    else:
        base = _commit(repo, event.base)
        shallow = repo.git.rev_parse("--is-shallow-repository") == "true"
        if base is None or shallow or repo.merge_base(base, head):
            return event
        reason = f"{event.head[:12]} shares no history with {event.base} (an orphan branch)"
    return event.model_copy(
        update={
            "nothing_to_judge": f"{reason}; no prompt has an earlier version to compare with, "
            "so nothing is judged"
        }
    )


def _commit(repo: git.Repo, ref: str) -> git.Commit | None:
    try:
        return repo.commit(ref)
    except (BadName, ValueError, GitCommandError):
        return None


def _payload(env: Mapping[str, str]) -> dict[str, Any]:
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read the event payload: {exc}", file=path) from exc
    return data if isinstance(data, dict) else {}


def _default_branch(payload: dict[str, Any]) -> str | None:
    branch = (payload.get("repository") or {}).get("default_branch")
    return f"origin/{branch}" if branch else None


def _run_url(env: Mapping[str, str]) -> str | None:
    server, repository, run = (
        env.get("GITHUB_SERVER_URL"),
        env.get("GITHUB_REPOSITORY"),
        env.get("GITHUB_RUN_ID"),
    )
    return f"{server}/{repository}/actions/runs/{run}" if server and repository and run else None
