"""Any OpenAI-compatible chat-completions endpoint: `POST {base_url}/chat/completions` with a
bearer key; the token limit in the field the model takes (providers/parameters.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from promptgate.providers.base import MODEL_REFUSAL, ChatRequest, token_counts
from promptgate.providers.http import Answer, HttpProvider, Parsed, error_code, excerpt
from promptgate.providers.parameters import is_reasoning_model, token_limit_param

#: Refusals (`Completion.refusal`): the content filter stopped the prompt, or cut the answer.
CONTENT_FILTER_PROMPT = "content_filter: prompt"
CONTENT_FILTER_ANSWER = "content_filter: answer"


class OpenAIProvider(HttpProvider):
    kind = "openai"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    default_api_key_env: ClassVar[str] = "OPENAI_API_KEY"

    def _chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _key_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _sends_model(self) -> bool:
        """Whether the body names the model (a URL that names a deployment does instead)."""
        return True

    def _refusal_status(self, response: Answer) -> str | None:
        """Azure's content filter refusing the prompt: HTTP 400 with code content_filter."""
        if response.status == 400 and error_code(response) == "content_filter":
            return CONTENT_FILTER_PROMPT
        return None

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        """The chat-completions body: the token limit in the field the model takes, and no
        temperature for a model that accepts none but its own (providers/parameters.py)."""
        body: dict[str, Any] = {"messages": [m.model_dump() for m in request.messages]}
        if self._sends_model():
            body["model"] = request.model
        if not is_reasoning_model(request.model):
            body["temperature"] = request.temperature
        body[token_limit_param(request.model, self.config.token_limit_param)] = request.max_tokens
        return {**body, **dict(request.extra_params)}

    def _parse(self, response: Answer, payload: Any) -> Parsed:
        """A 200's answer: text, refusal and token counts (chat-completions' shape)."""
        text, refusal = self._completion_text(response, payload)
        return Parsed(text, refusal, *token_counts(payload, "prompt_tokens", "completion_tokens"))

    def _completion_text(self, response: Answer, payload: Any) -> tuple[str, str | None]:
        """The answer's text, and the refusal when the content filter cut it (what it kept,
        often nothing, is the answer) or the model declined (`message.refusal`: its words are
        the answer, as a user would read them). Otherwise an empty answer is a fault to retry."""
        try:
            choice = payload["choices"][0]
            message = choice["message"]
            content = message.get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._error(
                f"{self.url} answered 200 without choices[0].message: {excerpt(response)}",
                retryable=True,
            ) from None
        finish_reason = choice.get("finish_reason")
        if finish_reason == "content_filter":
            return (content if isinstance(content, str) else ""), CONTENT_FILTER_ANSWER
        declined = message.get("refusal")
        if isinstance(declined, str) and declined.strip():
            return (content if isinstance(content, str) and content.strip() else declined), (
                MODEL_REFUSAL
            )
        if not isinstance(content, str) or not content.strip():
            raise self._error(
                f"{self.url} returned an empty completion (finish_reason: {finish_reason})",
                retryable=True,
            )
        return content, None
