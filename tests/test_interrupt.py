"""A gate run killed midway (SIGTERM: the CI job cancelled; SIGKILL: the runner lost) leaves a
consistent cache, and the re-run makes only the calls that were missing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_fixtures import API_KEY, API_KEY_ENV, TEXTS, config_yaml, jsonl
from gitrepo import RepoBuilder
from llm_stub import LLMStub

CONCURRENCY = 4  # config_yaml's provider.concurrency: at most this many calls are in flight
TOTAL_CALLS = 2 * len(TEXTS)  # one modified prompt: baseline and candidate for each example


@pytest.fixture
def slow_stub() -> Iterator[LLMStub]:
    with LLMStub(api_key=API_KEY, latency_s=0.25) as server:
        yield server


def _repo(root: Path, stub: LLMStub) -> RepoBuilder:
    builder = RepoBuilder(root / "repo")
    builder.commit(
        {
            "promptgate.yaml": config_yaml(stub, root / "mlflow.db"),
            "prompts/a.txt": "{{ text }}\n",
            "evals/a.jsonl": jsonl(),
        }
    )
    builder.branch("pr")
    builder.commit({"prompts/a.txt": "Summarise: {{ text }}\n"})
    return builder


def _start(repo: RepoBuilder, cache: Path, report: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "promptgate", "run", "--repo", str(repo.root),
        "--base", "main", "--head", "pr", "--cache-path", str(cache),
        "--report-json", str(report),
    ]  # fmt: skip
    env = {**os.environ, API_KEY_ENV: API_KEY, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _kill_midway(process: subprocess.Popen[str], stub: LLMStub, sig: signal.Signals) -> str:
    """Wait until half the calls have reached the server, then send `sig`."""
    deadline = time.monotonic() + 120
    while stub.request_count < TOTAL_CALLS // 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never got halfway"
        time.sleep(0.01)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    return stderr


def _bodies(requests: list) -> list[str]:
    return [json.dumps(r.body, sort_keys=True) for r in requests]


def _integrity(cache: Path) -> str:
    with sqlite3.connect(cache) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


def _rerun(repo: RepoBuilder, cache: Path, report: Path) -> dict:
    process = _start(repo, cache, report)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 1, stderr  # the rerun finishes and judges: "Summarise" regresses
    return json.loads(report.read_text())


def test_a_cancelled_run_keeps_every_answer_and_the_rerun_makes_only_the_missing_calls(
    tmp_path: Path, slow_stub: LLMStub
) -> None:
    repo, cache, report = _repo(tmp_path, slow_stub), tmp_path / "c.sqlite3", tmp_path / "r.json"
    first = _start(repo, cache, report)
    stderr = _kill_midway(first, slow_stub, signal.SIGTERM)
    assert first.returncode == 3, stderr  # interrupted: never a pass
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not report.exists()  # no half-written report
    assert _integrity(cache) == "ok"
    sent_first = _bodies(slow_stub.requests)
    assert len(sent_first) < TOTAL_CALLS

    second = _rerun(repo, cache, report)
    sent_again = _bodies(slow_stub.requests)[len(sent_first) :]
    calls = second["calls"]
    assert calls["made"] == len(sent_again) and calls["made"] + calls["cached"] == TOTAL_CALLS
    # Only the calls in flight when the signal came are made twice; every answer received is kept.
    assert len(set(sent_again) & set(sent_first)) <= CONCURRENCY
    assert calls["cached"] >= len(sent_first) - CONCURRENCY
    assert set(sent_first) | set(sent_again) == set(_bodies(slow_stub.requests))


def test_a_killed_run_leaves_a_consistent_cache_and_the_rerun_completes(
    tmp_path: Path, slow_stub: LLMStub
) -> None:
    repo, cache, report = _repo(tmp_path, slow_stub), tmp_path / "c.sqlite3", tmp_path / "r.json"
    first = _start(repo, cache, report)
    _kill_midway(first, slow_stub, signal.SIGKILL)  # no handler runs: unflushed answers are lost
    assert first.returncode == -signal.SIGKILL
    assert _integrity(cache) == "ok"  # the cache file is opened before the first call
    second = _rerun(repo, cache, report)
    assert second["calls"]["made"] + second["calls"]["cached"] == TOTAL_CALLS
    assert second["calls"]["failed"] == 0 and second["verdict"] == "fail"
