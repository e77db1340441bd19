from __future__ import annotations

from collections.abc import Iterator

import pytest
from github_stub import GitHubStub
from llm_stub import LLMStub


@pytest.fixture
def llm_stub() -> Iterator[LLMStub]:
    """A running OpenAI-compatible stub server (see tests/llm_stub.py); stopped afterwards."""
    with LLMStub() as stub:
        yield stub


@pytest.fixture
def github_stub() -> Iterator[GitHubStub]:
    """A running GitHub REST stub (see tests/github_stub.py); stopped afterwards."""
    with GitHubStub() as stub:
        yield stub
