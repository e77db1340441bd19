"""MLflow Prompt Registry: what the default branch holds, one prompt version per merged change.

    prompts/summarize.txt  ->  prompt `prompts.summarize.txt`, version N, alias `production` -> N

After a push to the default branch has been gated, each added, modified or renamed prompt's
candidate text becomes a new version of the prompt named after its repository path
(`prompt_name`), tagged with the commit, the gate run and the verdicts, and the `production`
alias moves to it: `mlflow.genai.load_prompt("prompts:/prompts.summarize.txt@production")`
then serves what was merged. Nothing is ever deleted: a deleted prompt keeps its versions and
alias and is tagged `promptgate.deleted_in`; a renamed one's old name is tagged
`promptgate.renamed_to`.

Registration is idempotent: when the latest version already holds the same template (and model
settings) no version is made, and the alias is set to that version again. A run for a commit
older than the one behind the latest version (a re-run of an old job) changes nothing.

The store is the gate's tracking store, as `promptgate.mlflow_store` resolves it. Only
`MlflowClient` is used, so no tracking URI or active run is left behind; the MLflow settings
read from the environment are changed only for the duration of a call. A failure is a warning unless
`mlflow.required` is set (DESIGN.md "Exit codes").
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import git
from pydantic import BaseModel, Field
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promptgate.config import MlflowConfig
from promptgate.errors import BadInput, CouldNotEvaluate
from promptgate.mlflow_store import (
    check_store_file,
    describe_store_problem,
    ensure_sqlite_directory,
    mlflow_environment,
    redact_uri,
    resolve_tracking_uri,
)
from promptgate.prompts import is_prompt_yaml, parse_prompt

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry.prompt import Prompt
    from mlflow.entities.model_registry.prompt_version import PromptModelConfig, PromptVersion

    from promptgate.evaluation import PromptEvaluation
    from promptgate.gate import GateResult
    from promptgate.report.model import Report

ALIAS = "production"
PATH_TAG = "promptgate.path"
COMMIT_TAG = "promptgate.commit"
GATE_RUN_TAG = "promptgate.gate_run"
GATE_VERDICT_TAG = "promptgate.gate_verdict"
PROMPT_VERDICT_TAG = "promptgate.prompt_verdict"
CONFIG_HASH_TAG = "promptgate.config_hash"
PROMPT_HASH_TAG = "promptgate.prompt_hash"
REPOSITORY_TAG = "promptgate.repository"
DELETED_TAG = "promptgate.deleted_in"
RENAMED_TAG = "promptgate.renamed_to"

MAX_NAME = 200  # the registry stores names in a 256-character column; leave room
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]")  # MLflow's rule: ^[a-zA-Z0-9_.-]+$
# MLflow links a new prompt version to an experiment in a thread of this name; waited for, so
# the link is written while the fail-fast settings hold and before the next write to the store.
_LINK_THREAD_PREFIX = "link_prompt_to_experiment_thread"

Action = Literal[
    "registered", "unchanged", "stale", "skipped", "conflict", "marked-deleted", "marked-renamed"
]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class RegisteredPrompt(BaseModel):
    """What happened to one changed prompt in the registry."""

    path: str
    name: str
    action: Action
    version: int | None = None
    note: str | None = None

    def describe(self, alias: str) -> str:
        place = f"{self.path} → {self.name}"
        if self.action == "registered":
            return f"{place} version {self.version} ({alias})"
        if self.action == "unchanged":
            return f"{place} version {self.version} already holds this text ({alias})"
        return f"{place}: {self.action}" + (f" ({self.note})" if self.note else "")


class RegistryOutcome(BaseModel):
    tracking_uri: str
    alias: str = ALIAS
    prompts: list[RegisteredPrompt] = Field(default_factory=list)
    warning: str | None = None

    def lines(self) -> list[str]:
        return [prompt.describe(self.alias) for prompt in self.prompts]

    def summary_markdown(self) -> str:
        """A job-summary section; paths come from the repository, so they are escaped."""
        from promptgate.report.escape import inline

        items = "".join(f"- {inline(line, 300)}\n" for line in self.lines())
        return f"### Prompt Registry ({inline(self.tracking_uri)})\n\n{items}"


class PromptVersionInfo(BaseModel):
    """One version as `promptgate registry NAME` shows it."""

    name: str
    version: int
    created: datetime
    aliases: list[str] = Field(default_factory=list)
    commit: str | None = None
    commit_message: str | None = None
    path: str | None = None
    gate_run: str | None = None
    gate_verdict: str | None = None
    prompt_verdict: str | None = None


class PromptInfo(BaseModel):
    """One prompt as `promptgate registry` shows it."""

    name: str
    path: str | None
    versions: int
    latest_version: int | None
    production_version: int | None
    commit: str | None = Field(default=None, description="the commit of the latest registration")
    deleted_in: str | None = None
    renamed_to: str | None = None


class UnknownPrompt(BadInput):
    """No prompt of that name or path in the registry (exit 2)."""


class _Conflict(Exception):
    """The prompt name belongs to something else; phrased for the user."""


def prompt_name(path: str) -> str:
    """The MLflow prompt name of a repository path.

    `/` becomes `.`, any other character outside MLflow's `[A-Za-z0-9_.-]` becomes `_`:
    `prompts/summarize.txt` -> `prompts.summarize.txt`, `chat/Q&A.prompt.yml` ->
    `chat.Q_A.prompt.yml`. Names longer than 200 characters keep their first 191 and a hash of
    the path. Two paths that map to one name are caught when registering (the prompt's
    `promptgate.path` tag says which path owns it).
    """
    name = _NOT_IN_NAME.sub("_", path.strip("/").replace("/", "."))
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(path.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}-{digest}"
    return name or "_"


# --- registering what was merged -----------------------------------------------------------


def register_merged_prompts(
    result: GateResult,
    *,
    repo: Path,
    tracking_uri: str | None = None,
    repository: str = "",
) -> RegistryOutcome:
    """Register each added, modified or renamed prompt of a gated merge as a new version.

    `repo` is the gated repository (for the commit message and ancestry); `repository` the
    GitHub `owner/name`, recorded so two repositories sharing a registry cannot overwrite each
    other's prompts. A prompt the gate could not evaluate (verdict `error`) is skipped, so a
    re-run registers it with a real verdict; a failing prompt is registered, since it is what
    the default branch now holds (its tags say `fail`). Returns what happened; a store failure
    or a name conflict is `warning`, or raises `CouldNotEvaluate` when `mlflow.required`.
    """
    settings = result.config.mlflow
    uri = resolve_tracking_uri(settings, tracking_uri)
    outcome = RegistryOutcome(tracking_uri=redact_uri(uri))
    problem: str | None = None
    try:
        with mlflow_environment(), _registry_environment(uri, result.report):
            _register_all(result, repo, uri, repository, outcome)
    except Exception as exc:  # any store failure; the verdict must not depend on the registry
        logger.debug("registering prompts failed", exc_info=True)
        problem = describe_store_problem(exc, uri)
    conflicts = [p.note for p in outcome.prompts if p.action == "conflict" and p.note]
    problems = [p.rstrip(". ") for p in [*conflicts, *([problem] if problem else [])]]
    if not problems:
        return outcome
    what = f"the MLflow Prompt Registry at {outcome.tracking_uri} could not be updated: " + (
        "; ".join(problems)
    )
    if settings.required:
        raise CouldNotEvaluate(
            f"{what}. mlflow.required is true, so this run fails; fix the store or set "
            "mlflow.required: false to make this a warning."
        )
    outcome.warning = f"{what}. The verdict stands; a re-run registers what is missing."
    return outcome


def _register_all(
    result: GateResult, repo: Path, uri: str, repository: str, outcome: RegistryOutcome
) -> None:
    from mlflow import MlflowClient

    check_store_file(uri)
    ensure_sqlite_directory(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    report = result.report
    git_repo = _open_repo(repo)
    message = _commit_message(git_repo, report.head.sha)
    for evaluation in result.evaluations:
        prompt = evaluation.report
        if prompt.change == "deleted":
            outcome.prompts.append(
                _mark(client, prompt.path, DELETED_TAG, report.head.sha, repository)
            )
            continue
        if prompt.change == "unchanged":
            continue  # judged for its eval set (or `--all`); this merge did not change its text
        name = prompt_name(prompt.path)
        if prompt.verdict == "error" or evaluation.candidate_text is None:
            outcome.prompts.append(
                RegisteredPrompt(
                    path=prompt.path,
                    name=name,
                    action="skipped",
                    note="the gate could not evaluate it; re-run the job to register it",
                )
            )
            continue
        try:
            registered = _register(client, evaluation, report, message, repository, git_repo, name)
        except _Conflict as conflict:
            registered = RegisteredPrompt(
                path=prompt.path, name=name, action="conflict", note=str(conflict)
            )
        outcome.prompts.append(registered)
        moved = registered.action in ("registered", "unchanged")
        if prompt.change == "renamed" and prompt.old_path and moved:
            outcome.prompts.append(_mark(client, prompt.old_path, RENAMED_TAG, name, repository))


def _register(
    client: MlflowClient,
    evaluation: PromptEvaluation,
    report: Report,
    message: str,
    repository: str,
    git_repo: git.Repo | None,
    name: str,
) -> RegisteredPrompt:
    prompt = evaluation.report
    text = evaluation.candidate_text or ""
    existing = _find_prompt(client, name)
    if existing is not None:
        _check_owner(name, existing.tags, prompt.path, repository)
    template, model_config = _template(prompt.path, text)
    latest = _latest_version(client, name) if existing is not None else None
    if existing is not None and latest is not None:
        if latest.template == template and (latest.model_config or None) == (
            model_config.to_dict() if model_config else None
        ):
            _clear_departure_tags(client, name, existing.tags)
            client.set_prompt_alias(name, ALIAS, int(latest.version))
            return RegisteredPrompt(
                path=prompt.path, name=name, action="unchanged", version=int(latest.version)
            )
        newer = (latest.tags or {}).get(COMMIT_TAG)
        if newer and _is_older(git_repo, report.head.sha, newer):
            return RegisteredPrompt(
                path=prompt.path,
                name=name,
                action="stale",
                version=int(latest.version),
                note=f"version {latest.version} is from the newer commit {newer[:7]}",
            )
    tags = {
        PATH_TAG: prompt.path,
        COMMIT_TAG: report.head.sha,
        GATE_VERDICT_TAG: report.verdict,
        PROMPT_VERDICT_TAG: prompt.verdict,
        GATE_RUN_TAG: report.mlflow.run_id,
        CONFIG_HASH_TAG: report.gate.config_hash if report.gate else None,
        PROMPT_HASH_TAG: prompt.candidate_hash,
        REPOSITORY_TAG: repository,
    }
    version = client.register_prompt(
        name,
        template,
        commit_message=message,
        tags={key: value for key, value in tags.items() if value},
        model_config=model_config,
    )
    _wait_for_experiment_link()
    if existing is not None:
        _clear_departure_tags(client, name, existing.tags)
    client.set_prompt_alias(name, ALIAS, int(version.version))
    return RegisteredPrompt(
        path=prompt.path, name=name, action="registered", version=int(version.version)
    )


def _clear_departure_tags(client: MlflowClient, name: str, tags: dict[str, str]) -> None:
    """The path holds a prompt again: it is no longer deleted or renamed away."""
    for tag in (DELETED_TAG, RENAMED_TAG):
        if tag in tags:
            client.delete_prompt_tag(name, tag)


def _mark(
    client: MlflowClient, path: str, tag: str, value: str, repository: str
) -> RegisteredPrompt:
    """Tag the prompt of a path that left the default branch; its versions and alias stay."""
    name = prompt_name(path)
    existing = _find_prompt(client, name)
    if existing is None:
        return RegisteredPrompt(path=path, name=name, action="skipped", note="not in the registry")
    try:
        _check_owner(name, existing.tags, path, repository)
    except _Conflict:
        return RegisteredPrompt(
            path=path, name=name, action="skipped", note="the name belongs to another prompt"
        )
    client.set_prompt_tag(name, tag, value)
    action: Action = "marked-deleted" if tag == DELETED_TAG else "marked-renamed"
    return RegisteredPrompt(path=path, name=name, action=action, note=f"{tag}={value}")


def _check_owner(name: str, tags: dict[str, str], path: str, repository: str) -> None:
    owner = tags.get(PATH_TAG)
    if owner is None:
        raise _Conflict(
            f"prompt '{name}' exists in the registry but was not registered by promptgate; "
            f"rename it or the file {path}"
        )
    if owner != path:
        raise _Conflict(
            f"prompt '{name}' belongs to {owner}, which maps to the same name as {path}"
        )
    owner_repository = tags.get(REPOSITORY_TAG)
    if repository and owner_repository and owner_repository != repository:
        raise _Conflict(
            f"prompt '{name}' belongs to the repository {owner_repository}; repositories that "
            "share a registry need prompt paths that differ"
        )


def _template(path: str, text: str) -> tuple[str | list[dict[str, Any]], PromptModelConfig | None]:
    """A plain template is a text prompt as written; a `.prompt.yml` is a chat prompt whose
    model settings come from the file (`model`, `modelParameters`)."""
    if not is_prompt_yaml(path):
        return text, None
    parsed = parse_prompt(path, text)
    messages: list[dict[str, Any]] = [
        {"role": role, "content": content} for role, content in parsed.messages
    ]
    return messages, _model_config(parsed.model, parsed.parameters)


def _model_config(
    model: str | None, parameters: dict[str, float | int | str | bool]
) -> PromptModelConfig | None:
    from mlflow.entities.model_registry.prompt_version import PromptModelConfig

    settings: dict[str, Any] = {"model_name": model} if model else {}
    for key, value in parameters.items():
        if key == "stop":
            settings["stop_sequences"] = [value] if isinstance(value, str) else value
        else:
            settings[key] = value
    if not settings:
        return None
    try:
        return PromptModelConfig.from_dict(settings)
    except ValueError:  # a value MLflow's model config refuses: keep it, unvalidated
        return PromptModelConfig.model_validate({"extra_params": settings})


def _find_prompt(client: MlflowClient, name: str) -> Prompt | None:
    """The prompt of that name, None when there is none; a store failure raises.

    (`MlflowClient.get_prompt` answers None for any failure, unreachable store included.)
    `name` is a valid prompt name, so it needs no quoting in the filter.
    """
    found = client.search_prompts(filter_string=f"name = '{name}'", max_results=1)
    return found[0] if found else None


def _latest_version(client: MlflowClient, name: str) -> PromptVersion | None:
    versions = _all_versions(client, name)
    return max(versions, key=lambda v: int(v.version)) if versions else None


def _all_versions(client: MlflowClient, name: str) -> list[PromptVersion]:
    versions: list[PromptVersion] = []
    token: str | None = None
    while True:
        page = client.search_prompt_versions(name, max_results=100, page_token=token)
        versions.extend(page)
        token = page.token or None
        if not token:
            return versions


def _wait_for_experiment_link() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith(_LINK_THREAD_PREFIX) and thread is not threading.current_thread():
            thread.join(timeout=30)


@contextmanager
def _registry_environment(uri: str, report: Report) -> Iterator[None]:
    """What MLflow's `register_prompt` reads from the environment, for the duration of the call.

    It links each new version to "the current experiment", looked up through the environment
    with a client on the default tracking URI: point both at the gate's store and experiment,
    so the prompts show in the gate's experiment and no stray `./mlflow.db` appears.
    """
    changes: dict[str, str | None] = {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_ID": report.mlflow.experiment_id,
        "MLFLOW_EXPERIMENT_NAME": None,
    }
    saved = {key: os.environ.get(key) for key in changes}
    _apply(changes)
    try:
        yield
    finally:
        _apply(saved)


def _apply(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _open_repo(repo: Path) -> git.Repo | None:
    try:
        return git.Repo(repo, search_parent_directories=True)
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError):
        return None


def _commit_message(git_repo: git.Repo | None, sha: str) -> str:
    """`<subject> (<sha7>)`: the version's description in the registry."""
    subject = ""
    if git_repo is not None:
        try:
            subject = str(git_repo.commit(sha).summary)
        except (ValueError, git.exc.GitError):
            subject = ""
    return f"{subject} ({sha[:7]})" if subject else f"commit {sha[:7]}"


def _is_older(git_repo: git.Repo | None, sha: str, other: str) -> bool:
    """Whether `sha` is a strict ancestor of `other`; False when git cannot tell."""
    if git_repo is None or sha == other:
        return False
    try:
        return bool(git_repo.is_ancestor(git_repo.commit(sha), git_repo.commit(other)))
    except (ValueError, git.exc.GitError):
        return False


# --- reading the registry ------------------------------------------------------------------


def mlflow_settings(config_path: Path | None) -> MlflowConfig:
    """The mlflow section of a work-tree promptgate.yaml: `config_path`, else ./promptgate.yaml
    when there is one, else the defaults."""
    from promptgate.config import DEFAULT_CONFIG_PATH, parse_config

    path = config_path or Path(DEFAULT_CONFIG_PATH)
    if config_path is None and not path.is_file():
        return MlflowConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read the config: {exc.strerror or exc}", file=str(path)) from exc
    return parse_config(text, str(path)).mlflow


def store_label(settings: MlflowConfig, tracking_uri: str | None = None) -> str:
    return redact_uri(resolve_tracking_uri(settings, tracking_uri))


def list_registered_prompts(
    settings: MlflowConfig, tracking_uri: str | None = None
) -> list[PromptInfo]:
    """Every prompt promptgate registered (those with a `promptgate.path` tag), by name."""
    uri = resolve_tracking_uri(settings, tracking_uri)

    def read(client: MlflowClient) -> list[PromptInfo]:
        prompts = []
        token: str | None = None
        while True:
            page = client.search_prompts(
                filter_string=f"tags.`{PATH_TAG}` LIKE '%'", max_results=100, page_token=token
            )
            prompts.extend(page)
            token = page.token or None
            if not token:
                break
        infos = []
        for prompt in sorted(prompts, key=lambda p: p.name):
            versions = _all_versions(client, prompt.name)
            production = _version_by_alias(client, prompt.name, ALIAS)
            infos.append(
                PromptInfo(
                    name=prompt.name,
                    path=prompt.tags.get(PATH_TAG),
                    versions=len(versions),
                    latest_version=max((int(v.version) for v in versions), default=None),
                    production_version=production,
                    commit=prompt.tags.get(COMMIT_TAG),
                    deleted_in=prompt.tags.get(DELETED_TAG),
                    renamed_to=prompt.tags.get(RENAMED_TAG),
                )
            )
        return infos

    return _reading(uri, read)


def list_prompt_versions(
    prompt: str, settings: MlflowConfig, tracking_uri: str | None = None
) -> tuple[str, list[PromptVersionInfo]]:
    """The versions of a prompt given by MLflow name or repository path, newest first."""
    uri = resolve_tracking_uri(settings, tracking_uri)
    candidates = [prompt] if prompt and not _NOT_IN_NAME.search(prompt) else []
    path = prompt.removeprefix("./")
    if path.strip("/") and prompt_name(path) not in candidates:
        candidates.append(prompt_name(path))

    def read(client: MlflowClient) -> tuple[str, list[PromptVersionInfo]]:
        for name in candidates:
            if _find_prompt(client, name) is None:
                continue
            versions = sorted(_all_versions(client, name), key=lambda v: -int(v.version))
            return name, [_version_info(client, v) for v in versions]
        tried = " or ".join(f"'{name}'" for name in candidates) or "(empty)"
        raise UnknownPrompt(
            f"no prompt {tried} in the registry at {redact_uri(uri)}; "
            "`promptgate registry` lists the prompts promptgate registered",
            file=prompt or None,
        )

    return _reading(uri, read)


def _version_info(client: MlflowClient, version: PromptVersion) -> PromptVersionInfo:
    # Searches leave aliases out; a single version's lookup has them.
    full = client.get_prompt_version(version.name, version.version) or version
    tags = full.tags or {}
    return PromptVersionInfo(
        name=full.name,
        version=int(full.version),
        created=datetime.fromtimestamp(full.creation_timestamp / 1000, tz=UTC),
        aliases=sorted(full.aliases or []),
        commit=tags.get(COMMIT_TAG),
        commit_message=full.commit_message,
        path=tags.get(PATH_TAG),
        gate_run=tags.get(GATE_RUN_TAG),
        gate_verdict=tags.get(GATE_VERDICT_TAG),
        prompt_verdict=tags.get(PROMPT_VERDICT_TAG),
    )


def _version_by_alias(client: MlflowClient, name: str, alias: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_prompt_version(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
            return None  # no such alias
        raise
    return int(version.version) if version is not None else None


def _reading(uri: str, read: Callable[[MlflowClient], T]) -> T:
    """Run `read(client)` against the store; an unusable store is exit 3 with a short reason."""
    from mlflow import MlflowClient

    try:
        with mlflow_environment():
            result: T = read(MlflowClient(tracking_uri=uri, registry_uri=uri))
    except UnknownPrompt:
        raise
    except Exception as exc:
        logger.debug("reading the prompt registry failed", exc_info=True)
        raise CouldNotEvaluate(
            f"the MLflow Prompt Registry at {redact_uri(uri)} could not be read: "
            f"{describe_store_problem(exc, uri)}. Check --mlflow-tracking-uri / MLFLOW_TRACKING_URI / "
            "mlflow.tracking_uri."
        ) from exc
    return result


# --- showing it ----------------------------------------------------------------------------


def print_prompts(console: Console, prompts: list[PromptInfo], where: str) -> None:
    if not prompts:
        console.print(f"no prompts registered by promptgate in {escape(where)}")
        return
    table = Table(title=f"prompts in {escape(where)}", title_justify="left")
    for column in ("name", "path", "versions", ALIAS, "last commit", "note"):
        table.add_column(column)
    for prompt in prompts:
        note = (
            f"deleted in {prompt.deleted_in[:7]}"
            if prompt.deleted_in
            else f"renamed to {prompt.renamed_to}"
            if prompt.renamed_to
            else ""
        )
        table.add_row(
            escape(prompt.name),
            escape(prompt.path or ""),
            str(prompt.versions),
            str(prompt.production_version or "—"),
            (prompt.commit or "")[:7],
            escape(note),
        )
    console.print(table)


def print_versions(console: Console, name: str, versions: list[PromptVersionInfo]) -> None:
    table = Table(title=f"prompt {escape(name)}", title_justify="left")
    for column in ("version", "created (UTC)", "aliases", "commit", "gate run", "verdict"):
        table.add_column(column)
    for version in versions:
        table.add_row(
            str(version.version),
            version.created.strftime("%Y-%m-%d %H:%M:%S"),
            escape(", ".join(version.aliases)),
            escape((version.commit or "")[:7]),
            escape(version.gate_run or ""),
            escape(version.prompt_verdict or ""),
        )
    console.print(table)
