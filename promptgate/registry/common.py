"""Reading a prompt and its versions, for registering and listing alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry.prompt import Prompt
    from mlflow.entities.model_registry.prompt_version import PromptVersion


def find_prompt(client: MlflowClient, name: str) -> Prompt | None:
    """The prompt of that name, None when there is none; a store failure raises.

    (`MlflowClient.get_prompt` answers None for any failure, unreachable store included.)
    `name` is a valid prompt name, so it needs no quoting in the filter.
    """
    found = client.search_prompts(filter_string=f"name = '{name}'", max_results=1)
    return found[0] if found else None


def latest_version(client: MlflowClient, name: str) -> PromptVersion | None:
    versions = all_versions(client, name)
    return max(versions, key=lambda v: int(v.version)) if versions else None


def all_versions(client: MlflowClient, name: str) -> list[PromptVersion]:
    versions: list[PromptVersion] = []
    token: str | None = None
    while True:
        page = client.search_prompt_versions(name, max_results=100, page_token=token)
        versions.extend(page)
        token = page.token or None
        if not token:
            return versions
