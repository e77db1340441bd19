"""Provider registry. Adding a provider is one module and one line in PROVIDERS."""

from __future__ import annotations

import importlib

from promptgate.config import ProviderConfig
from promptgate.providers.base import ChatMessage, ChatRequest, Provider, ProviderError

PROVIDERS: dict[str, str] = {
    "openai": "promptgate.providers.openai:OpenAIProvider",
    "github-models": "promptgate.providers.github_models:GitHubModelsProvider",
    "offline": "promptgate.providers.offline:OfflineProvider",
}


def make_provider(config: ProviderConfig) -> Provider:
    module_name, class_name = PROVIDERS[config.kind].split(":")
    provider_class: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return provider_class(config)


__all__ = ["PROVIDERS", "ChatMessage", "ChatRequest", "Provider", "ProviderError", "make_provider"]
