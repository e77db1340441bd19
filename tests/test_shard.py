"""Scale-out: `run --shard i/n` on each slice, then `merge`, gives the unsharded run's verdict,
metrics and report, with every call made exactly once across the shards and none at the merge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_fixtures import API_KEY, API_KEY_ENV, TEXTS, config_yaml, jsonl
from gitrepo import RepoBuilder
from llm_stub import LLMStub
from typer.testing import CliRunner

from promptgate.cli import app
from promptgate.errors import BadInput
from promptgate.shard import Shard, parse_shard, shard_slice

GOOD = "{{ text }}\n"
CHATTY = "Well, let me think about this one very carefully and at great length: {{ text }}\n"


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMStub]:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    with LLMStub(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def repo(tmp_path: Path, stub: LLMStub) -> RepoBuilder:
    """Two prompts of 12 examples each change on `pr`: one regresses, one is reworded."""
    builder = RepoBuilder(tmp_path / "repo")
    builder.commit(
        {
            "promptgate.yaml": config_yaml(stub, tmp_path / "mlflow.db"),
            "prompts/a.txt": GOOD,
            "prompts/b.txt": "Say: " + GOOD,  # not a's text: no call is shared between them
            "evals/a.jsonl": jsonl(),
            "evals/b.jsonl": jsonl(),
        }
    )
    builder.branch("pr")
    builder.commit({"prompts/a.txt": CHATTY, "prompts/b.txt": "Say: {{ text }} \n"})
    return builder


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_shards_partition_the_pairs_and_their_merge_is_the_unsharded_run(
    repo: RepoBuilder, stub: LLMStub, tmp_path: Path
) -> None:
    where = ["--repo", str(repo.root), "--base", "main", "--head", "pr"]
    code, _ = cli(
        "run", *where, "--no-cache", "--report-json", str(tmp_path / "whole.json"),
        "--mlflow-tracking-uri", f"sqlite:///{tmp_path}/whole.db",
    )  # fmt: skip
    assert code == 1
    whole = json.loads((tmp_path / "whole.json").read_text())
    unsharded_calls = stub.request_count
    assert unsharded_calls == 2 * 2 * len(TEXTS)
    stub.reset()

    for index in (1, 2, 3):
        code, output = cli(
            "run", *where, "--shard", f"{index}/3", "--shard-dir", str(tmp_path / f"s{index}")
        )
        assert code == 0, output
        manifest = json.loads((tmp_path / f"s{index}" / "manifest.json").read_text())
        assert manifest["pairs"] == 8 and manifest["total_pairs"] == 24
    bodies = [json.dumps(r.body, sort_keys=True) for r in stub.requests]
    assert len(bodies) == len(set(bodies)) == unsharded_calls  # each call once, none missing
    stub.reset()

    code, output = cli(
        "merge", *[str(tmp_path / f"s{i}") for i in (3, 1, 2)], *where,
        "--cache-path", str(tmp_path / "merged.sqlite3"),
        "--report-json", str(tmp_path / "merged.json"),
        "--mlflow-tracking-uri", f"sqlite:///{tmp_path}/merged.db",
    )  # fmt: skip
    assert code == 1, output
    assert stub.request_count == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["calls"]["made"] == 0 and merged["calls"]["cached"] == unsharded_calls
    for key in ("verdict", "base", "head", "config_changed", "gate"):
        assert merged[key] == whole[key]
    assert [p["verdict"] for p in merged["prompts"]] == ["fail", "pass"]
    for mine, theirs in zip(merged["prompts"], whole["prompts"], strict=True):
        assert mine["metrics"] == theirs["metrics"]  # deltas, intervals and verdicts, exactly
        assert mine["top_regressions"] == theirs["top_regressions"]


def test_a_merge_missing_a_shard_is_bad_input_naming_it(repo: RepoBuilder, tmp_path: Path) -> None:
    where = ["--repo", str(repo.root), "--base", "main", "--head", "pr"]
    for index in (1, 3):
        assert (
            cli("run", *where, "--shard", f"{index}/3", "--shard-dir", str(tmp_path / f"s{index}"))[
                0
            ]
            == 0
        )
    code, output = cli("merge", str(tmp_path / "s1"), str(tmp_path / "s3"), *where)
    assert code == 2 and "missing shard(s) 2/3" in output


def test_shards_of_another_commit_are_refused(repo: RepoBuilder, tmp_path: Path) -> None:
    where = ["--repo", str(repo.root), "--base", "main"]
    assert (
        cli("run", *where, "--head", "pr", "--shard", "1/1", "--shard-dir", str(tmp_path / "s"))[0]
        == 0
    )
    repo.commit({"prompts/b.txt": CHATTY})  # a new push after the shards ran
    code, output = cli("merge", str(tmp_path / "s"), *where, "--head", "pr")
    assert code == 2 and "pass the same --base and --head" in output


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0"])
def test_a_malformed_shard_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="i/n with 1 <= i <= n"):
        parse_shard(text)


@pytest.mark.parametrize(("total", "count"), [(24, 3), (10, 4), (3, 5), (0, 2), (1000, 7)])
def test_slices_partition_the_work_in_order_with_sizes_one_apart(total: int, count: int) -> None:
    slices = [shard_slice(total, Shard(index=i, count=count)) for i in range(1, count + 1)]
    assert [i for s in slices for i in s] == list(range(total))
    sizes = [len(s) for s in slices]
    assert max(sizes) - min(sizes) <= 1
