"""The one small interface every provider implements, and the request/answer values it speaks."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from promptgate.config import ProviderConfig


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    role: Literal["system", "user", "assistant", "developer"]
    content: str


class ChatRequest(BaseModel):
    """One generation: a rendered conversation plus every parameter that changes the answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float
    max_tokens: int
    extra_params: tuple[tuple[str, float | int | str | bool], ...] = ()
    sample_index: int = 0
    #: How many earlier examples of the eval set rendered this same request: set at temperature
    #: > 0 only, so each example draws its own sample instead of sharing one with its repeats.
    #: It enters the cache key (and so the runner's deduplication), never the API body.
    repeat: int = Field(default=0, ge=0)

    def cache_key(self, provider_identity: str) -> str:
        """Content address: provider, model, parameters, messages, sample index and, when not 0,
        repeat (left out at 0, so every key from before it existed is unchanged)."""
        exclude = {"repeat"} if self.repeat == 0 else None
        payload = {"provider": provider_identity, **self.model_dump(mode="json", exclude=exclude)}
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


#: `Completion.refusal` of an answer the model itself declined to give (chat completions'
#: `message.refusal`, the Messages API's stop_reason "refusal"): its words are the answer.
MODEL_REFUSAL = "refusal: model"


class Completion(BaseModel):
    """An answer and what it cost: the server's token counts (None where it sent none) and how
    long the call that got it took. `cached`: it came from the cache, with the counts and the
    latency of the call that first got it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    latency_ms: float | None = Field(default=None, ge=0)
    cached: bool = False
    #: why a content filter or the model refused it (e.g. `content_filter: prompt`): the text
    #: kept, often nothing, is scored as the answer, since that is what a user would get
    refusal: str | None = None


def count_or_none(value: object) -> int | None:
    """`value` if it is a token count (a non-negative int, not a bool), else None: a server's
    body, or a cache file, is data that may hold anything."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def token_counts(payload: object, prompt: str, completion: str) -> tuple[int | None, int | None]:
    """The (prompt, completion) token counts in an answer's `usage` object, under the names the
    API gives them; None for each one it did not send as a count."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None, None
    return count_or_none(usage.get(prompt)), count_or_none(usage.get(completion))


class ProviderError(Exception):
    """A call that did not produce an answer. `retryable` says whether trying again may help;
    `fatal` that no other call can succeed either (refused credentials, no quota left);
    `overloaded` that the server turned it away for load (429)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        fatal: bool = False,
        overloaded: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.fatal = fatal
        #: the server turned the call away for load (429): fewer calls at once may help
        self.overloaded = overloaded


class Provider(ABC):
    """An LLM behind one async method. Register subclasses with `providers.register`."""

    kind: ClassVar[str]
    #: Libraries `complete` imports on first use; `import_client_in_background` starts them early.
    client_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @property
    def identity(self) -> str:
        """What distinguishes this provider's answers in the cache (kind and endpoint)."""
        return f"{self.kind}:{self.config.base_url or ''}"

    @abstractmethod
    async def complete(self, request: ChatRequest) -> Completion:
        """The completion, or raise ProviderError."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once when the run ends."""
