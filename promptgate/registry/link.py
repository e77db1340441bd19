"""A prompt version's run linked to the Prompt Registry version that holds the same text.

The registry (registry/register.py) makes a version of each prompt the default branch merges,
tagged with the text's hash. A gate's baseline run ran exactly such a text, and a push gate's
candidate run the text that registering it then makes a version of: linking them lets MLflow's
Prompts page list the runs that evaluated a version, and each run show the version it ran. A
prompt the registry has never seen (no registry in use, or a text not yet merged) links nothing.
The run tag is written here rather than by `MlflowClient.link_prompt_version_to_run`, which
writes it through the process-wide tracking URI, not the client's store.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from promptgate.registry.names import PROMPT_HASH_TAG, prompt_name

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry.prompt_version import PromptVersion

    from promptgate.report.model import Report

LINKED_PROMPTS_TAG = "mlflow.linkedPrompts"
#: Versions looked at per prompt: the newest first, which is where a merged text is found.
_VERSIONS_SEARCHED = 100
_RUNS_PER_PAGE = 1000


def link_registered_version(
    client: MlflowClient, run_id: str, path: str, text_hash: str | None
) -> int | None:
    """Link `run_id` to the registered version of `path` whose text hash is `text_hash`; its
    version number, or None when there is none."""
    from mlflow.exceptions import MlflowException

    if not text_hash:
        return None
    try:
        versions = client.search_prompt_versions(prompt_name(path), max_results=_VERSIONS_SEARCHED)
    except MlflowException:
        return None  # no such prompt in the registry
    for version in versions:
        if (version.tags or {}).get(PROMPT_HASH_TAG) == text_hash:
            _link(client, run_id, None, version)
            return int(version.version)
    return None


def link_gate_runs(
    client: MlflowClient, report: Report, versions: Mapping[str, PromptVersion]
) -> None:
    """The gate's candidate runs linked to the versions their texts became (prompt path ->
    version): one search of the gate's child runs, page by page, whatever their number."""
    info = report.mlflow
    if not versions or not info.run_id or not info.experiment_id:
        return
    # Matched here, not in the filter: a path may hold a quote the filter language cannot.
    for run in _child_runs(client, info.experiment_id, info.run_id):
        tags = run.data.tags
        version = versions.get(tags.get("promptgate.prompt", ""))
        if version is not None and tags.get("promptgate.version") == "candidate":
            _link(client, run.info.run_id, tags.get(LINKED_PROMPTS_TAG), version)


def _child_runs(client: MlflowClient, experiment_id: str, parent_id: str) -> Iterator[Run]:
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
            max_results=_RUNS_PER_PAGE,
            page_token=token,
        )
        yield from page
        token = page.token or None
        if not token:
            return


def _link(client: MlflowClient, run_id: str, current: str | None, version: PromptVersion) -> None:
    from mlflow.tracing.utils.prompt import update_linked_prompts_tag

    client.set_tag(run_id, LINKED_PROMPTS_TAG, update_linked_prompts_tag(current, [version]))
