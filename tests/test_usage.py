"""What a prompt change costs (issue 13): every answer's token usage and latency, kept in the
cache, summed per version and for the run, priced, shown, logged to MLflow, and gated."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from gate_fixtures import API_KEY, API_KEY_ENV, TEXTS, PromptRepo, config_yaml, jsonl
from gitrepo import RepoBuilder
from llm_stub import Fault, LLMStub, prompt_tokens
from mlflow.tracking import MlflowClient
from test_providers import KEY_ENV, SECRET, chat, completion, stub_provider

from promptgate.cache import ResponseCache
from promptgate.providers.base import Completion
from promptgate.report import escape
from promptgate.report.markdown import render_markdown
from promptgate.report.model import Usage
from promptgate.usage import usage_of

PRICE = "  price: { input_per_mtok: 2.5, output_per_mtok: 10 }\n"
#: the same answers (the stub restates the last user message), more prompt tokens
USER = "  - role: user\n    content: '{{text}}'\n"
SYSTEM = (
    "  - role: system\n    content: 'You are a careful, precise assistant who always restates "
    "the sentence exactly as it was given, word for word.'\n"
)
BASE = "messages:\n" + USER
VERBOSE = "messages:\n" + SYSTEM + USER
PROMPTS = "  - path: prompts/*.prompt.yml\n    dataset: evals/a.jsonl\n"


def words(text: str) -> int:
    return len(text.split())


def verbose_pr(tmp_path: Path, stub: LLMStub, **config: str) -> PromptRepo:
    """A repository whose PR adds a system message to its one prompt: the same answers (the
    stub restates the last user message), more prompt tokens."""
    builder = RepoBuilder(tmp_path / "repo")
    builder.commit(
        {
            "promptgate.yaml": config_yaml(stub, tmp_path / "mlflow.db", prompts=PROMPTS, **config),
            "prompts/a.prompt.yml": BASE,
            "evals/a.jsonl": jsonl(),
        },
        "prompts",
    )
    builder.branch("pr")
    builder.commit({"prompts/a.prompt.yml": VERBOSE})
    return PromptRepo(builder, tmp_path)


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> LLMStub:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    with LLMStub(api_key=API_KEY) as server:
        yield server


def test_each_versions_tokens_and_cost_are_the_stubs_usage_summed(
    tmp_path: Path, stub: LLMStub
) -> None:
    repo = verbose_pr(tmp_path, stub, provider=PRICE)
    run = repo.gate(use_cache=False)
    assert run.exit_code == 0, run.report.model_dump_json(indent=1)

    # what the stub reported, request by request, split by version (the system message)
    sent = [request.body for request in stub.requests]
    verbose = [body for body in sent if body["messages"][0]["role"] == "system"]
    plain = [body for body in sent if body["messages"][0]["role"] == "user"]
    usage = run.report.prompts[0].usage
    for side, bodies in (("baseline", plain), ("candidate", verbose)):
        assert usage[side].calls == usage[side].reported == len(bodies) == len(TEXTS)
        assert usage[side].prompt_tokens == sum(prompt_tokens(body) for body in bodies)
        assert usage[side].completion_tokens == sum(words(text) for text in TEXTS)
        expected_cost = (
            usage[side].prompt_tokens * 2.5 + usage[side].completion_tokens * 10
        ) / 1_000_000
        assert usage[side].cost_usd == pytest.approx(expected_cost, rel=1e-12)
        assert usage[side].latency_ms_p50 is not None and usage[side].latency_ms_p50 > 0
        assert usage[side].latency_ms_p95 >= usage[side].latency_ms_p50
    total = run.report.usage
    assert total is not None and total.calls == 2 * len(TEXTS)
    assert total.prompt_tokens == usage["baseline"].prompt_tokens + usage["candidate"].prompt_tokens
    assert total.cost_usd == pytest.approx(usage["baseline"].cost_usd + usage["candidate"].cost_usd)

    extra = words(SYSTEM.split("content: '")[1].split("'")[0])  # the system message's words
    before, after = usage["baseline"].tokens_per_call, usage["candidate"].tokens_per_call
    assert after - before == pytest.approx(extra)
    markdown = render_markdown(run.report)
    change = f"{(after / before - 1) * 100:.1f} %"
    assert f"Cost: tokens per call {before:,.0f} → {after:,.0f} (+{change})" in markdown
    assert "per 1,000 calls &#36;" in markdown  # a dollar sign GitHub cannot read as math


def test_a_cached_rerun_reports_what_the_calls_cost_marked_cached(
    tmp_path: Path, stub: LLMStub
) -> None:
    repo = verbose_pr(tmp_path, stub, provider=PRICE)
    first = repo.gate()
    again = repo.gate()
    assert again.report.calls.made == 0
    for side in ("baseline", "candidate"):
        made, cached = first.report.prompts[0].usage[side], again.report.prompts[0].usage[side]
        assert made.cached == 0 and cached.cached == cached.calls == made.calls
        same = {"cached"}
        assert cached.model_dump(exclude=same) == made.model_dump(exclude=same)


def test_the_usage_gates_fail_a_costlier_prompt_in_words(tmp_path: Path, stub: LLMStub) -> None:
    gates = "gate:\n  max_token_increase: 0.25\n  max_latency_increase: 100\n"
    repo = verbose_pr(tmp_path, stub, extra=gates)
    run = repo.gate(use_cache=False)
    (prompt,) = run.report.prompts
    assert run.exit_code == 1 and prompt.verdict == "fail"
    assert all(result.status == "pass" for result in prompt.metrics.values())  # same answers
    change = prompt.usage["candidate"].tokens_per_call / prompt.usage["baseline"].tokens_per_call
    assert prompt.reason == (
        f"tokens per call +{(change - 1) * 100:.1f} % is above +25.0 % (gate.max_token_increase)"
    )
    assert f"> **Fails:** {escape.inline(prompt.reason, 500)}" in render_markdown(run.report)


def test_without_usage_gates_a_costlier_prompt_passes_and_the_cost_is_shown(
    tmp_path: Path, stub: LLMStub
) -> None:
    repo = verbose_pr(tmp_path, stub)
    run = repo.gate(use_cache=False)
    assert run.exit_code == 0 and run.report.prompts[0].verdict == "pass"
    usage = run.report.prompts[0].usage
    assert usage["candidate"].cost_usd is None  # no price, no cost: no built-in price list
    assert "per 1,000 calls" not in render_markdown(run.report)


def test_each_child_run_logs_its_versions_usage_and_the_parent_the_total(
    tmp_path: Path, stub: LLMStub
) -> None:
    repo = verbose_pr(tmp_path, stub, provider=PRICE)
    run = repo.gate(use_cache=False)

    client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}")
    parent = client.get_run(run.report.mlflow.run_id)
    assert parent.data.metrics["usage.calls"] == 2 * len(TEXTS)
    assert parent.data.metrics["usage.cost_usd"] == pytest.approx(run.report.usage.cost_usd)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    by_version = {child.data.tags["promptgate.version"]: child for child in children}
    for side, child in by_version.items():
        usage = run.report.prompts[0].usage[side]
        assert child.data.metrics["usage.prompt_tokens"] == usage.prompt_tokens
        assert child.data.metrics["usage.tokens_per_call"] == pytest.approx(usage.tokens_per_call)


# --- where the figures come from ---------------------------------------------------------------


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": "12", "completion_tokens": 3},
        {"prompt_tokens": -1, "completion_tokens": 3},
        {"prompt_tokens": True, "completion_tokens": 3},
        "lots",
    ],
)
def test_usage_a_server_sends_that_is_not_a_count_is_left_out(
    monkeypatch: pytest.MonkeyPatch, usage: object
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    body = {
        "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": usage,
    }
    with LLMStub() as stub:
        stub.script(Fault.http_error(200, body=json.dumps(body)))
        answer = completion(stub_provider(stub), chat("hi"))
    assert answer.text == "hi" and answer.prompt_tokens is None
    assert answer.completion_tokens == (3 if isinstance(usage, dict) else None)


def test_a_cache_from_before_usage_opens_and_its_answers_report_none(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE completions (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "created_at REAL NOT NULL) WITHOUT ROWID"
        )
        old.execute("INSERT INTO completions VALUES ('k', 'old answer', 0)")
    with ResponseCache(path) as cache:
        assert cache.get_many(["k"]) == {"k": Completion(text="old answer", cached=True)}
        cache.put("n", Completion(text="new", prompt_tokens=4, completion_tokens=1, latency_ms=9))
    with ResponseCache(path) as reopened:
        found = reopened.get_many(["n"])["n"]
    assert (found.prompt_tokens, found.completion_tokens, found.latency_ms) == (4, 1, 9.0)

    merged = tmp_path / "merged.sqlite3"
    with ResponseCache(merged) as cache:
        assert cache.import_from(path) == 2


def test_a_cache_file_with_nonsense_usage_reports_none_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with ResponseCache(path) as cache:
        cache.put("k", Completion(text="answer"))
    with sqlite3.connect(path) as edited:
        edited.execute(
            "UPDATE completions SET prompt_tokens = 'x', completion_tokens = -5, latency_ms = 1e300"
        )
    with ResponseCache(path) as cache:
        assert cache.get_many(["k"])["k"] == Completion(text="answer", cached=True)


def test_percentiles_and_sums_of_answers() -> None:
    answers = [
        Completion(text="a", prompt_tokens=10, completion_tokens=2, latency_ms=ms)
        for ms in (100.0, 200.0, 300.0, 400.0)
    ] + [Completion(text="b", latency_ms=1000.0, cached=True)]  # no counts from the server
    usage = usage_of(answers, None)
    # p95: between 400 and 1000, 0.8 of the way (linear interpolation, numpy's default)
    assert usage.latency_ms_p95 == pytest.approx(880.0)
    assert usage.model_copy(update={"latency_ms_p95": 880.0}) == Usage(
        calls=5,
        cached=1,
        reported=4,
        prompt_tokens=40,
        completion_tokens=8,
        latency_ms_p50=300.0,
        latency_ms_p95=880.0,
        cost_usd=None,
    )
    assert usage.tokens_per_call == 12.0


def test_the_terminal_gives_the_reason_a_prompt_failed_not_a_rule_that_did_not_apply() -> None:
    """An eval set changed under `on_dataset_change: warn` and the token gate failed the
    prompt: the terminal says why, and does not blame the eval-set rule."""
    import io

    from rich.console import Console
    from test_markdown import prompt, report

    from promptgate.report.model import DatasetDiff
    from promptgate.report.terminal import print_summary

    reason = "tokens per call +88.4 % is above +25.0 % (gate.max_token_increase)"
    costlier = prompt(
        dataset_changed=True,
        dataset_diff=DatasetDiff(added=1, removed=0, reference_changed=0),
        reason=reason,
    )
    out = io.StringIO()
    print_summary(report(costlier), Console(file=out, width=200, color_system=None))
    assert reason in out.getvalue()
    assert "on_dataset_change" not in out.getvalue()
