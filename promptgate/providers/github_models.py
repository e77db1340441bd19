"""GitHub Models: the OpenAI-compatible inference endpoint, authenticated with a GitHub token."""

from __future__ import annotations

from typing import ClassVar

from promptgate.providers.openai import OpenAIProvider


class GitHubModelsProvider(OpenAIProvider):
    kind = "github-models"
    default_base_url: ClassVar[str] = "https://models.github.ai/inference"
    default_api_key_env: ClassVar[str] = "GITHUB_TOKEN"
