"""Recording what the default branch merged: one version per changed prompt."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import git

from promptgate.errors import CouldNotEvaluate
from promptgate.mlflow_store import (
    check_store_file,
    describe_store_problem,
    ensure_sqlite_directory,
    mlflow_environment,
    redact_uri,
    resolve_tracking_uri,
)
from promptgate.prompts import is_prompt_yaml, parse_prompt
from promptgate.registry.common import find_prompt, latest_version
from promptgate.registry.link import link_gate_runs
from promptgate.registry.model import Action, RegisteredPrompt, RegistryOutcome
from promptgate.registry.names import (
    ALIAS,
    COMMIT_TAG,
    CONFIG_HASH_TAG,
    DELETED_TAG,
    GATE_RUN_TAG,
    GATE_VERDICT_TAG,
    PATH_TAG,
    PROMPT_HASH_TAG,
    PROMPT_VERDICT_TAG,
    RENAMED_TAG,
    REPOSITORY_TAG,
    prompt_name,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry.prompt_version import PromptModelConfig, PromptVersion

    from promptgate.evaluation import PromptEvaluation
    from promptgate.gate import GateResult
    from promptgate.report.model import Report

# MLflow links a new prompt version to an experiment in a thread of this name; waited for, so
# the link is written while the fail-fast settings hold and before the next write to the store.
_LINK_THREAD_PREFIX = "link_prompt_to_experiment_thread"


logger = logging.getLogger(__name__)


class _Conflict(Exception):
    """The prompt name belongs to something else; phrased for the user."""


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
    linked: dict[str, PromptVersion] = {}  # prompt path -> the version its candidate run ran
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
            registered = _register(
                client, evaluation, report, message, repository, git_repo, name, linked
            )
        except _Conflict as conflict:
            registered = RegisteredPrompt(
                path=prompt.path, name=name, action="conflict", note=str(conflict)
            )
        outcome.prompts.append(registered)
        moved = registered.action in ("registered", "unchanged")
        if prompt.change == "renamed" and prompt.old_path and moved:
            outcome.prompts.append(_mark(client, prompt.old_path, RENAMED_TAG, name, repository))
    link_gate_runs(client, report, linked)


def _register(
    client: MlflowClient,
    evaluation: PromptEvaluation,
    report: Report,
    message: str,
    repository: str,
    git_repo: git.Repo | None,
    name: str,
    linked: dict[str, PromptVersion],
) -> RegisteredPrompt:
    """Register the prompt's text (or find it already registered), and note in `linked` the
    version its candidate run is to be linked to."""
    prompt = evaluation.report
    text = evaluation.candidate_text or ""
    existing = find_prompt(client, name)
    if existing is not None:
        _check_owner(name, existing.tags, prompt.path, repository)
    template, model_config = _template(prompt.path, text)
    latest = latest_version(client, name) if existing is not None else None
    if existing is not None and latest is not None:
        if latest.template == template and (latest.model_config or None) == (
            model_config.to_dict() if model_config else None
        ):
            _clear_departure_tags(client, name, existing.tags)
            client.set_prompt_alias(name, ALIAS, int(latest.version))
            linked[prompt.path] = latest
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
    linked[prompt.path] = version
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
    existing = find_prompt(client, name)
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
