"""Listing what is registered."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from promptgate.config import MlflowConfig
from promptgate.errors import BadInput, CouldNotEvaluate
from promptgate.mlflow_store import (
    describe_store_problem,
    mlflow_environment,
    redact_uri,
    resolve_tracking_uri,
)
from promptgate.registry.common import all_versions, find_prompt
from promptgate.registry.model import PromptInfo, PromptVersionInfo, UnknownPrompt
from promptgate.registry.names import (
    ALIAS,
    COMMIT_TAG,
    DELETED_TAG,
    GATE_RUN_TAG,
    GATE_VERDICT_TAG,
    NOT_IN_NAME,
    PATH_TAG,
    PROMPT_VERDICT_TAG,
    RENAMED_TAG,
    prompt_name,
)
from promptgate.trust import repository_state_dir

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry.prompt_version import PromptVersion


T = TypeVar("T")

logger = logging.getLogger(__name__)


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


def registry_store(config_path: Path | None, tracking_uri: str | None = None) -> str:
    """The store `promptgate registry` reads: `tracking_uri` > $MLFLOW_TRACKING_URI > the
    config's > `sqlite:///mlflow.db`, a relative sqlite path being in `.promptgate/` at the root
    of the repository around the working directory, where a local run logs."""
    local_dir = repository_state_dir(Path.cwd())
    return resolve_tracking_uri(mlflow_settings(config_path), tracking_uri, local_dir=local_dir)


def list_registered_prompts(uri: str) -> list[PromptInfo]:
    """Every prompt promptgate registered (those with a `promptgate.path` tag), by name."""

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
            versions = all_versions(client, prompt.name)
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


def list_prompt_versions(prompt: str, uri: str) -> tuple[str, list[PromptVersionInfo]]:
    """The versions of a prompt given by MLflow name or repository path, newest first."""
    candidates = [prompt] if prompt and not NOT_IN_NAME.search(prompt) else []
    path = prompt.removeprefix("./")
    if path.strip("/") and prompt_name(path) not in candidates:
        candidates.append(prompt_name(path))

    def read(client: MlflowClient) -> tuple[str, list[PromptVersionInfo]]:
        for name in candidates:
            if find_prompt(client, name) is None:
                continue
            versions = sorted(all_versions(client, name), key=lambda v: -int(v.version))
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
