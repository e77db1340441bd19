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

from typing import TYPE_CHECKING

from promptgate.registry.names import PROMPT_HASH_TAG, prompt_name

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry.prompt_version import PromptVersion

    from promptgate.report.model import Report

LINKED_PROMPTS_TAG = "mlflow.linkedPrompts"
#: Versions looked at per prompt: the newest first, which is where a merged text is found.
_VERSIONS_SEARCHED = 100


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


def link_gate_run(client: MlflowClient, report: Report, path: str, version: PromptVersion) -> None:
    """The gate's candidate run of `path` linked to the version its text became."""
    info = report.mlflow
    if not info.run_id or not info.experiment_id:
        return
    # Matched here, not in the filter: a path may hold a quote the filter language cannot.
    children = client.search_runs(
        [info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{info.run_id}'"
    )
    for run in children:
        tags = run.data.tags
        if tags.get("promptgate.prompt") == path and tags.get("promptgate.version") == "candidate":
            _link(client, run.info.run_id, tags.get(LINKED_PROMPTS_TAG), version)


def _link(client: MlflowClient, run_id: str, current: str | None, version: PromptVersion) -> None:
    from mlflow.tracing.utils.prompt import update_linked_prompts_tag

    client.set_tag(run_id, LINKED_PROMPTS_TAG, update_linked_prompts_tag(current, [version]))
