"""Repeated inputs: at temperature > 0 every example of an eval set draws its own sample, even when
its input repeats another's, because the paired bootstrap counts every example as an independent
draw; at temperature 0 the answer is fixed and one call serves every repeat, under the same cache
key as before repeats were told apart."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gate_fixtures import config_yaml, noisy_stub
from gitrepo import RepoBuilder
from llm_stub import LLMStub
from typer.testing import CliRunner

from promptgate.calibrate import calibrate
from promptgate.cli import app
from promptgate.gate import GateResult, evaluate, plan_request
from promptgate.providers.base import ChatMessage, ChatRequest
from promptgate.request import GateRequest

UNIQUE = [
    "the cat sat on the mat near the warm kitchen stove",
    "rain is expected across the northern coast by friday evening",
    "the quarterly report shows revenue up nine percent year on year",
    "please restart the router and wait two minutes before retrying",
]
REPEATS = 3
#: 12 examples, each input three times, interleaved (ex-0, ex-4 and ex-8 share an input).
TEXTS = [UNIQUE[i % len(UNIQUE)] for i in range(len(UNIQUE) * REPEATS)]
BASE = "Repeat the sentence on the last line word for word.\n{{ text }}\n"
REWORDED = "Copy the final line below exactly, keeping every one of its words.\n{{ text }}\n"
REGRESSED = BASE.replace("\n{{", "\n[stub-regression drop=0.5]\n{{")
IDENTITY = "openai:http://127.0.0.1/v1"


def eval_set(texts: list[str]) -> str:
    return "".join(
        json.dumps({"id": f"ex-{i}", "vars": {"text": t}, "expected": t}) + "\n"
        for i, t in enumerate(texts)
    )


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMStub]:
    with noisy_stub(monkeypatch, "repeats") as server:
        yield server


def build_repo(
    tmp_path: Path, stub: LLMStub, *, temperature: float, prompts: dict[str, tuple[str, str]]
) -> RepoBuilder:
    """`prompts`: path -> (text on main, text on pr); every prompt uses the repeated eval set.
    One call at a time, so the stub sees the calls in plan order and its noise is replayable."""
    config = config_yaml(stub, tmp_path / "mlflow.db").replace(
        "  concurrency: 4\n", f"  concurrency: 1\n  temperature: {temperature}\n"
    )
    builder = RepoBuilder(tmp_path / "repo")
    files = {"promptgate.yaml": config}
    for path, (base, _) in prompts.items():
        files[path] = base
        files[f"evals/{Path(path).stem}.jsonl"] = eval_set(TEXTS)
    builder.commit(files, "prompts")
    builder.branch("pr")
    builder.commit({path: head for path, (_, head) in prompts.items()}, "reword")
    return builder


def reworded(tmp_path: Path, stub: LLMStub, temperature: float, cache: Path | None) -> GateResult:
    """The gate on a PR that rewords one prompt (noise only); `cache` None: no cache."""
    repo = build_repo(
        tmp_path, stub, temperature=temperature, prompts={"prompts/a.txt": (BASE, REWORDED)}
    )
    return evaluate(
        GateRequest(
            repo=repo.root, base="main", head="pr", use_cache=cache is not None, cache_path=cache
        )
    )


def cache_entries(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])


def documented_key(request: ChatRequest, identity: str) -> str:
    """The cache key as README's Cache section and every cache written so far define it."""
    payload: dict[str, Any] = {
        "provider": identity,
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "extra_params": [list(pair) for pair in request.extra_params],
        "sample_index": request.sample_index,
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_above_temperature_zero_every_example_of_a_repeated_input_is_its_own_call(
    tmp_path: Path, stub: LLMStub
) -> None:
    cache = tmp_path / "cache.sqlite3"
    result = reworded(tmp_path, stub, 0.7, cache)

    per_side = len(TEXTS)
    assert stub.request_count == 2 * per_side
    assert result.report.calls.made == 2 * per_side and result.report.calls.cached == 0
    assert cache_entries(cache) == 2 * per_side  # one cached answer per example and side
    # What tells the repeats apart is not sent: the API sees the same body three times.
    bodies = Counter(json.dumps(r.body, sort_keys=True) for r in stub.requests)
    assert len(bodies) == 2 * len(UNIQUE) and set(bodies.values()) == {REPEATS}

    stub.reset()
    again = evaluate(GateRequest(repo=tmp_path / "repo", base="main", head="pr", cache_path=cache))
    assert stub.request_count == 0 and again.report.calls.cached == 2 * per_side


def test_at_temperature_zero_a_repeated_input_is_one_call_that_serves_every_repeat(
    tmp_path: Path, stub: LLMStub
) -> None:
    cache = tmp_path / "cache.sqlite3"
    result = reworded(tmp_path, stub, 0, cache)

    assert stub.request_count == 2 * len(UNIQUE)
    calls = result.report.calls
    assert calls.requested == 2 * len(TEXTS) and calls.made == 2 * len(UNIQUE)
    assert calls.cached == 2 * (len(TEXTS) - len(UNIQUE))  # the repeats, answered by the first
    assert cache_entries(cache) == 2 * len(UNIQUE)


def test_repeats_of_an_input_get_different_outputs_above_temperature_zero(
    tmp_path: Path, stub: LLMStub
) -> None:
    result = reworded(tmp_path, stub, 0.7, cache=None)

    [evaluation] = result.evaluations
    for side in ("baseline_outputs", "candidate_outputs"):
        by_input: dict[str, set[str]] = {}
        for example in evaluation.examples:
            outputs = getattr(example, side)
            assert outputs is not None and len(outputs) == 1
            by_input.setdefault(example.expected, set()).add(outputs[0])
        assert len(by_input) == len(UNIQUE)
        # Three independent noisy restatements of a 10-12 word sentence (seeded: no flake).
        assert all(len(outputs) == REPEATS for outputs in by_input.values()), by_input


def test_a_sharded_run_with_repeated_inputs_merges_to_the_unsharded_verdict(
    tmp_path: Path, stub: LLMStub
) -> None:
    repo = build_repo(
        tmp_path,
        stub,
        temperature=0.7,
        prompts={"prompts/a.txt": (BASE, REGRESSED), "prompts/b.txt": ("Say: " + BASE, REWORDED)},
    )
    where = ["--repo", str(repo.root), "--base", "main", "--head", "pr"]
    whole_json = tmp_path / "whole.json"
    code, output = cli(
        "run", *where, "--no-cache", "--report-json", str(whole_json),
        "--mlflow-tracking-uri", f"sqlite:///{tmp_path}/whole.db",
    )  # fmt: skip
    assert code == 1, output
    calls = 2 * 2 * len(TEXTS)  # prompts x sides x examples: no repeat shares a call
    assert stub.request_count == calls

    stub.reset()
    stub.reseed("repeats")  # the same draws again, in the same order
    for index in (1, 2, 3):
        code, output = cli(
            "run", *where, "--shard", f"{index}/3", "--shard-dir", str(tmp_path / f"s{index}")
        )
        assert code == 0, output
    assert stub.request_count == calls  # every call once across the shards

    stub.reset()
    merged_json = tmp_path / "merged.json"
    code, output = cli(
        "merge", *[str(tmp_path / f"s{i}") for i in (1, 2, 3)], *where,
        "--cache-path", str(tmp_path / "merged.sqlite3"), "--report-json", str(merged_json),
        "--mlflow-tracking-uri", f"sqlite:///{tmp_path}/merged.db",
    )  # fmt: skip
    assert code == 1, output
    assert stub.request_count == 0
    whole, merged = json.loads(whole_json.read_text()), json.loads(merged_json.read_text())
    assert merged["verdict"] == whole["verdict"] == "fail"
    assert merged["calls"]["requested"] == calls and merged["calls"]["made"] == 0
    for mine, theirs in zip(merged["prompts"], whole["prompts"], strict=True):
        assert (mine["path"], mine["verdict"]) == (theirs["path"], theirs["verdict"])
        assert mine["metrics"] == theirs["metrics"]
    assert [p["verdict"] for p in merged["prompts"]] == ["fail", "pass"]


def test_calibration_samples_every_repeat_on_both_sides_of_its_a_a_run(
    tmp_path: Path, stub: LLMStub
) -> None:
    repo = build_repo(tmp_path, stub, temperature=0.7, prompts={"prompts/a.txt": (BASE, BASE)})
    calibration = calibrate(
        GateRequest(repo=repo.root, head="pr", cache_path=tmp_path / "cache.sqlite3")
    )
    assert stub.request_count == 2 * len(TEXTS) == calibration.calls.made
    assert calibration.calls.cached == 0


def test_a_temperature_zero_cache_key_is_byte_identical_to_the_one_caches_hold() -> None:
    request = ChatRequest(
        model="gpt-4o-mini",
        messages=(
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="Summarise: the cat sat on the mat"),
        ),
        temperature=0.0,
        max_tokens=256,
        extra_params=(("top_p", 0.5),),
    )
    identity = "openai:https://api.openai.com/v1"
    # Computed by promptgate before repeats were told apart (commit e402f04).
    assert request.cache_key(identity) == (
        "cabd7751bdb96605950bf59a09cbba15537b537c3e316d282bc46638956262f6"
    )
    # The first occurrence of an input keeps its key at temperature > 0 too.
    sampled = request.model_copy(update={"temperature": 0.7, "sample_index": 1})
    assert sampled.cache_key(identity) == (
        "3aa78bf7cceb4f3cc83f30a913ab1b49806bc665dad0548db6c3d119fe8ab9dd"
    )


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_planned_keys_are_the_documented_ones_except_for_a_repeat_above_temperature_zero(
    tmp_path: Path, stub: LLMStub, temperature: float
) -> None:
    repo = build_repo(
        tmp_path, stub, temperature=temperature, prompts={"prompts/a.txt": (BASE, REWORDED)}
    )
    [plan] = plan_request(GateRequest(repo=repo.root, base="main", head="pr")).plans
    for side in ("baseline", "candidate"):
        keys = [r.cache_key(IDENTITY) for [r] in plan.requests[side]]
        documented = [documented_key(r, IDENTITY) for [r] in plan.requests[side]]
        first = len(UNIQUE)  # examples 0-3 are first occurrences, 4-11 repeats
        assert keys[:first] == documented[:first]
        if temperature == 0:
            assert keys == documented and len(set(keys)) == len(UNIQUE)
        else:
            assert len(set(keys)) == len(TEXTS)  # one per example
