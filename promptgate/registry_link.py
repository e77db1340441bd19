"""A prompt version's run linked to the Prompt Registry version that holds the same text.

The registry (registry.py) makes a version of each prompt the default branch merges, tagged with
the text's hash. A gate's baseline run ran exactly such a text: linking the two lets MLflow's
Prompts page list the runs that evaluated a version, and the run show the version it ran. A
prompt the registry has never seen (no registry in use, or a text not yet merged) links nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promptgate.registry.names import PROMPT_HASH_TAG, prompt_name

if TYPE_CHECKING:
    from mlflow import MlflowClient

LINKED_PROMPTS_TAG = "mlflow.linkedPrompts"
#: Versions looked at per prompt: the newest first, which is where a merged text is found.
_VERSIONS_SEARCHED = 100


def link_registered_version(
    client: MlflowClient, run_id: str, path: str, text_hash: str | None
) -> int | None:
    """Link `run_id` to the registered version of `path` whose text hash is `text_hash`; its
    version number, or None when there is none."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracing.utils.prompt import update_linked_prompts_tag

    if not text_hash:
        return None
    try:
        versions = client.search_prompt_versions(prompt_name(path), max_results=_VERSIONS_SEARCHED)
    except MlflowException:
        return None  # no such prompt in the registry
    for version in versions:
        if (version.tags or {}).get(PROMPT_HASH_TAG) == text_hash:
            # The run tag `client.link_prompt_version_to_run` writes, written here: that method
            # writes it through the process-wide tracking URI, not this client's store.
            tag = update_linked_prompts_tag(None, [version])
            client.set_tag(run_id, LINKED_PROMPTS_TAG, tag)
            return int(version.version)
    return None
