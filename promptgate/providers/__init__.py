"""Provider registry. Adding a provider is one module and one line in PROVIDERS."""

from __future__ import annotations

import contextlib
import importlib
import threading

from promptgate.config import ProviderConfig
from promptgate.providers.base import ChatMessage, ChatRequest, Provider, ProviderError

PROVIDERS: dict[str, str] = {
    "openai": "promptgate.providers.openai:OpenAIProvider",
    "github-models": "promptgate.providers.github_models:GitHubModelsProvider",
    "offline": "promptgate.providers.offline:OfflineProvider",
}


def make_provider(config: ProviderConfig) -> Provider:
    return _provider_class(config)(config)


def import_in_background(config: ProviderConfig) -> None:
    """Start importing the provider's HTTP client on a thread, while git and planning run.

    aiohttp's import (0.15-0.3 s) was the last thing before the first call; about half of it
    loads CA certificates with the GIL released, so it overlaps the gate's own work. A later
    import of the same module waits for this one (Python's import lock) and an error in it is
    raised again there, where it is reported as usual.
    """
    modules = _provider_class(config).client_modules
    if modules:
        threading.Thread(
            target=_import_quietly,
            args=(modules,),
            name="promptgate-import-client",
            daemon=True,
        ).start()


def _import_quietly(modules: tuple[str, ...]) -> None:
    # An error is raised again by the import in `complete`, and reported there.
    with contextlib.suppress(Exception):
        for name in modules:
            importlib.import_module(name)


def _provider_class(config: ProviderConfig) -> type[Provider]:
    module_name, class_name = PROVIDERS[config.kind].split(":")
    provider_class: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return provider_class


__all__ = [
    "PROVIDERS",
    "ChatMessage",
    "ChatRequest",
    "Provider",
    "ProviderError",
    "import_in_background",
    "make_provider",
]
