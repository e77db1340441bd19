from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from github_stub import GitHubStub
from llm_stub import LLMStub
from mlflow_server import MlflowServer, running_mlflow_server


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


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A running `mlflow server` process (see tests/mlflow_server.py); stopped afterwards."""
    with running_mlflow_server(tmp_path) as server:
        yield server


@pytest.fixture(autouse=True)
def _as_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees the environment of a developer's shell, whatever runs the suite: the CLI
    behaves differently under CI (it judges commits only), so a test that wants CI sets it."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
