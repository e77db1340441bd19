"""A deterministic stand-in for an LLM, for the demo and tests: it echoes, it does not think."""

from __future__ import annotations

from collections.abc import Iterable

from promptgate.providers.base import ChatMessage, ChatRequest, Completion, Provider


def echo_reply(messages: Iterable[ChatMessage], max_tokens: int) -> str:
    """The last user message, whitespace collapsed to single spaces, cut to max_tokens words."""
    last_user = ""
    for message in messages:
        if message.role == "user":
            last_user = message.content
    return " ".join(last_user.split()[:max_tokens])


class OfflineProvider(Provider):
    kind = "offline"

    @property
    def identity(self) -> str:
        return "offline:echo"

    async def complete(self, request: ChatRequest) -> Completion:
        """The echo, with words counted as tokens (an echo has no tokenizer) and no latency."""
        text = echo_reply(request.messages, request.max_tokens)
        prompt_words = sum(len(message.content.split()) for message in request.messages)
        return Completion(
            text=text,
            prompt_tokens=prompt_words,
            completion_tokens=len(text.split()),
            latency_ms=0.0,
        )
