"""Provider registry. Adding a provider is one module and one line in PROVIDERS."""

from __future__ import annotations

import importlib

from promptgate.background import import_in_background
from promptgate.config import ProviderConfig
from promptgate.providers.base import (
    ChatMessage,
    ChatRequest,
    Completion,
    Provider,
    ProviderError,
)

PROVIDERS: dict[str, str] = {
    "openai": "promptgate.providers.openai:OpenAIProvider",
    "github-models": "promptgate.providers.github_models:GitHubModelsProvider",
    "azure-openai": "promptgate.providers.azure_openai:AzureOpenAIProvider",
    "anthropic": "promptgate.providers.anthropic:AnthropicProvider",
    "offline": "promptgate.providers.offline:OfflineProvider",
}


def make_provider(config: ProviderConfig) -> Provider:
    return _provider_class(config)(config)


def import_client_in_background(config: ProviderConfig) -> None:
    """Start importing the provider's HTTP client while git and planning run.

    aiohttp's import (0.15-0.3 s) was the last thing before the first call; about half of it
    loads CA certificates with the GIL released, so it overlaps the gate's own work.
    """
    import_in_background(*_provider_class(config).client_modules)


def _provider_class(config: ProviderConfig) -> type[Provider]:
    module_name, class_name = PROVIDERS[config.kind].split(":")
    provider_class: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return provider_class


__all__ = [
    "PROVIDERS",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "Provider",
    "ProviderError",
    "import_client_in_background",
    "make_provider",
]
