"""What a model family accepts in a chat-completions body.

OpenAI's reasoning models (the o1, o3 and o4 families and gpt-5, dated variants included) reject
`max_tokens` ("not compatible with o-series models", OpenAI's OpenAPI description) in favour of
`max_completion_tokens`, and accept no temperature but their default, 1: they always sample.
The family is read from the model's name, after any `publisher/` prefix (GitHub Models names
`openai/o3-mini`).
"""

from __future__ import annotations

import re

from promptgate.config import TokenLimitParam

_REASONING_FAMILY = re.compile(r"(?:o1|o3|o4|gpt-5)(?:$|[-.])", re.IGNORECASE)
#: The temperature a reasoning model samples at: the only one it accepts.
REASONING_TEMPERATURE = 1.0


def is_reasoning_model(model: str) -> bool:
    return _REASONING_FAMILY.match(model.rsplit("/", 1)[-1]) is not None


def token_limit_param(model: str, configured: TokenLimitParam | None) -> TokenLimitParam:
    """The body field that carries the token limit: the configured one, else the family's."""
    if configured is not None:
        return configured
    return "max_completion_tokens" if is_reasoning_model(model) else "max_tokens"


def sampling_temperature(model: str, configured: float) -> float:
    """The temperature the model samples at: a reasoning model's own, else the configured one.
    The gate plans with it, so a reasoning model's repeats are sampled like any model's at
    temperature > 0."""
    return REASONING_TEMPERATURE if is_reasoning_model(model) else configured
