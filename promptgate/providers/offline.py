"""A deterministic stand-in for an LLM, for the demo and tests: it echoes, it does not think."""

from __future__ import annotations

from collections.abc import Iterable

from promptgate.providers.base import ChatMessage, ChatRequest, Provider


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

    async def complete(self, request: ChatRequest) -> str:
        return echo_reply(request.messages, request.max_tokens)
