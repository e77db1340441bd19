"""Anthropic's Messages API: `POST {base_url}/v1/messages`.

System messages go to the top-level `system`; `max_tokens` is required; the answer is the
concatenated `text` blocks; usage comes from `input_tokens` and `output_tokens`. The key travels
in `x-api-key` with `anthropic-version: 2023-06-01`. 429 (rate limit) and 529 (overloaded) are
retried honouring `retry-after`, as any 429 or 5xx is (http.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

from promptgate.errors import BadInput
from promptgate.providers.base import MODEL_REFUSAL, ChatRequest, token_counts
from promptgate.providers.http import HttpProvider, Parsed

ANTHROPIC_VERSION = "2023-06-01"
#: What a `.prompt.yml`'s parameters may set here, in the Messages API's names.
_PARAMETERS = {"top_p": "top_p", "top_k": "top_k", "stop": "stop_sequences"}


class AnthropicProvider(HttpProvider):
    kind = "anthropic"
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    default_api_key_env: ClassVar[str] = "ANTHROPIC_API_KEY"

    def _chat_url(self) -> str:
        return f"{self.base_url}/v1/messages"

    def _key_headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key, "anthropic-version": ANTHROPIC_VERSION}

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        if request.temperature > 1:
            raise BadInput(
                f"temperature {request.temperature:g} is above the Messages API's range (0 to 1)"
            )
        system = [m.content for m in request.messages if m.role in ("system", "developer")]
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": [
                {"role": m.role, "content": m.content}
                for m in request.messages
                if m.role in ("user", "assistant")
            ],
            "temperature": request.temperature,
        }
        if system:
            body["system"] = "\n\n".join(system)
        for name, value in request.extra_params:
            if name not in _PARAMETERS:
                raise BadInput(
                    f"model parameter {name!r} is not one the Messages API takes (it takes "
                    f"{', '.join(sorted(_PARAMETERS))}); remove it from the prompt file"
                )
            body[_PARAMETERS[name]] = [value] if name == "stop" else value
        return body

    def _parse(self, response: Any, payload: Any) -> Parsed:
        """The text blocks joined, the usage, and a refusal when the model declined."""
        try:
            blocks = payload["content"]
            text = "".join(
                b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text"
            )
        except (KeyError, TypeError):
            raise self._error(
                f"{self.url} answered 200 without a list of content blocks", retryable=True
            ) from None
        counts = token_counts(payload, "input_tokens", "output_tokens")
        if payload.get("stop_reason") == "refusal":
            return Parsed(text, MODEL_REFUSAL, *counts)
        if not text.strip():
            raise self._error(
                f"{self.url} returned no text (stop_reason: {payload.get('stop_reason')})",
                retryable=True,
            )
        return Parsed(text, None, *counts)
