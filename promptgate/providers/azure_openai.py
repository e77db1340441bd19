"""Azure OpenAI: a deployment of an OpenAI model on an Azure resource.

Requests go to `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=…`
(the deployment, not the body, names the model), or with `api_version: v1` to Azure's
OpenAI-compatible `{base_url}/openai/v1/chat/completions` with the model in the body. The key
travels in the `api-key` header. Content-filter refusals are handled by the OpenAI provider:
Azure sends them as HTTP 400 `content_filter`, or as `finish_reason: content_filter`.
"""

from __future__ import annotations

import urllib.parse
from typing import ClassVar

from promptgate.providers.openai import OpenAIProvider


class AzureOpenAIProvider(OpenAIProvider):
    kind = "azure-openai"
    default_base_url: ClassVar[str] = ""  # a resource's own endpoint: the config must name it
    default_api_key_env: ClassVar[str] = "AZURE_OPENAI_API_KEY"

    @property
    def deployment(self) -> str:
        return self.config.deployment or self.config.model

    @property
    def api_version(self) -> str:
        assert self.config.api_version is not None  # the config requires it for this kind
        return self.config.api_version

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.base_url}:{self.deployment}:{self.api_version}"

    def _chat_url(self) -> str:
        if self.api_version == "v1":
            return f"{self.base_url}/openai/v1/chat/completions"
        deployment = urllib.parse.quote(self.deployment, safe="")
        version = urllib.parse.quote(self.api_version, safe="")
        return f"{self.base_url}/openai/deployments/{deployment}/chat/completions?api-version={version}"

    def _key_headers(self) -> dict[str, str]:
        return {"api-key": self._api_key}

    def _sends_model(self) -> bool:
        return self.api_version == "v1"
