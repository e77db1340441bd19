"""Adaptive sampling (`gate.samples: auto`, sequential.py): more generations only for a prompt
whose metric is undecided, with the PR's error rate held across the looks.

The rule is checked on constructed numbers and on seeded simulations (with a naive rule beside
it that the same simulation shows to be too loose), and end to end on real git repositories
against the noisy LLM stub on 127.0.0.1."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gate_fixtures import config_yaml, noisy_stub
from gitrepo import RepoBuilder
from llm_stub import LLMStub

from promptgate.config import GateSettings, parse_config
from promptgate.error_control import control_pr_errors, one_sided_p_value, t_quantile
from promptgate.errors import BadInput
from promptgate.gate import GateResult, evaluate
from promptgate.report.format import sampling_summary
from promptgate.report.markdown import render_markdown
from promptgate.report.model import Look, MetricResult, PromptReport
from promptgate.request import GateRequest
from promptgate.sequential import (
    SEQUENTIAL_RULE,
    is_undecided,
    sequential_p_value,
    spending_shares,
    with_look,
)
from promptgate.shard import parse_shard, run_shard

BASE = "Repeat the sentence on the last line word for word.\n{{ text }}\n"
REWORDED = "Copy the final line below exactly, keeping every one of its words.\n{{ text }}\n"
REGRESSED = BASE.replace("\n{{", "\n[stub-regression drop=0.6]\n{{")
WORDS = [
    "the",
    "team",
    "report",
    "shows",
    "revenue",
    "grew",
    "in",
    "the",
    "third",
    "quarter",
    "while",
    "costs",
    "fell",
    "and",
    "customers",
    "asked",
    "for",
    "faster",
    "delivery",
    "of",
    "new",
    "features",
]


# --- the rule, on constructed numbers ---------------------------------------------------------


def test_the_looks_spend_the_error_rate_little_first_and_all_by_the_last() -> None:
    for looks in (1, 2, 4, 10):
        shares = spending_shares(looks)
        assert len(shares) == looks
        assert math.fsum(shares) == pytest.approx(1.0, abs=1e-12)
        assert shares == sorted(shares)  # O'Brien-Fleming-like: later looks spend more
    assert spending_shares(1) == [1.0]
    assert spending_shares(4) == pytest.approx([1 / 64, 7 / 64, 19 / 64, 37 / 64])


def test_the_sequential_p_value_is_the_smallest_look_over_its_share() -> None:
    looks = [
        Look(samples=1, p_value=0.001, share=1 / 64),  # 0.064
        Look(samples=2, p_value=0.004, share=7 / 64),  # 0.0366
        Look(samples=3, p_value=0.2, share=19 / 64),  # 0.674
    ]
    assert sequential_p_value(looks) == pytest.approx(0.004 * 64 / 7)
    assert sequential_p_value([Look(samples=1, p_value=0.03, share=1.0)]) == 0.03
    assert sequential_p_value([Look(samples=1, p_value=0.5, share=0.1)]) == 1.0  # capped


def result(
    delta: float, standard_error: float, *, max_drop: float = 0.02, examples: int = 30
) -> MetricResult:
    quantile = t_quantile(0.975, examples - 1)
    return MetricResult(
        baseline=0.8,
        candidate=0.8 + delta,
        delta=delta,
        ci_low=delta - quantile * standard_error,
        ci_high=delta + quantile * standard_error,
        threshold=max_drop,
        status="pass",
        standard_error=standard_error,
        degrees_of_freedom=examples - 1,
        p_value=one_sided_p_value(delta, standard_error, examples - 1),
    )


def test_a_metric_is_undecided_only_while_its_interval_reaches_beyond_max_drop() -> None:
    assert is_undecided(result(-0.01, 0.01))  # could be a drop of 0.03
    assert not is_undecided(result(0.01, 0.002))  # a drop beyond 0.02 is excluded
    assert not is_undecided(result(0.0, 0.0))  # identical outputs: nothing to learn
    failed = result(-0.2, 0.01).model_copy(update={"status": "fail"})
    assert not is_undecided(failed)
    added = MetricResult(
        baseline=None, candidate=0.8, delta=None, ci_low=None, ci_high=None, threshold=0.02,
        status="pass",
    )  # fmt: skip
    assert not is_undecided(added)


def test_each_look_is_tested_at_its_share_of_the_prs_level() -> None:
    """One metric, two looks of four at error rate 0.01. Look 1: p 0.002, significant alone in
    a fixed design, but over its share (1/64) 0.13: a pass. Look 2: p 0.00087, over its share
    (7/64) 0.008 <= 0.01: a fail."""
    first = with_look(result(-0.05, 0.016), None, 1, 4)
    report = PromptReport(
        path="a", old_path=None, change="modified", verdict="pass", metrics={"m": first}
    )
    control_pr_errors([report], 0.01)
    assert first.p_value is not None and first.p_value < 0.01  # significant alone, fixed design
    assert report.metrics["m"].status == "pass"
    assert report.metrics["m"].decision_level == pytest.approx(0.01 / 64)

    second = result(-0.05, 0.0145)
    assert second.p_value == pytest.approx(0.00087, abs=0.00001)
    looked = with_look(second, report.metrics["m"], 2, 4)
    assert [look.samples for look in looked.looks] == [1, 2]
    assert looked.p_sequential == pytest.approx(second.p_value * 64 / 7)
    report.metrics["m"] = looked
    control_pr_errors([report], 0.01)
    assert report.metrics["m"].status == "fail"
    assert report.metrics["m"].decision_level == pytest.approx(0.01 * 7 / 64)
    assert "after 2 looks" in (report.metrics["m"].reason or "")


# --- the rule's error rate, on seeded simulations ----------------------------------------------


def simulate_no_op_prs(
    runs: int, *, sequential: bool, between_examples: float, seed: int
) -> tuple[float, float]:
    """No-op PRs of three prompts, each one metric on 30 examples with up to four looks,
    max_drop 0 (every look may fail it, the hardest case for the error rate). Each example's
    paired delta is its own fixed offset (mean 0 over examples; `between_examples` its SD: a
    reworded prompt that suits some examples and not others) plus one N(0, 1) draw per sample.
    Returns (share of PRs failed, mean looks per prompt). `sequential` False: every look is
    tested at the full level, the rule adaptive sampling must not be."""
    rng = np.random.default_rng(seed)
    error_rate, prompts, examples, max_samples = 0.05, 3, 30, 4
    failed, looks_taken = 0, 0
    for _ in range(runs):
        offsets = rng.normal(0.0, between_examples, size=(prompts, examples))
        offsets -= offsets.mean(axis=1, keepdims=True)
        draws = offsets[:, :, None] + rng.normal(size=(prompts, examples, max_samples))
        reports = [
            PromptReport(path=f"p{i}", old_path=None, change="modified", verdict="pass")
            for i in range(prompts)
        ]
        active = list(range(prompts))
        for samples in range(1, max_samples + 1):
            for i in active:
                deltas = draws[i, :, :samples].mean(axis=1)
                look = result(
                    float(deltas.mean()),
                    float(deltas.std(ddof=1)) / math.sqrt(examples),
                    max_drop=0.0,
                    examples=examples,
                )
                earlier = reports[i].metrics.get("m")
                reports[i].metrics["m"] = (
                    with_look(look, earlier, samples, max_samples) if sequential else look
                )
                looks_taken += 1
            control_pr_errors(reports, error_rate)
            if not sequential:  # a failure at any look sticks
                for report in reports:
                    if report.metrics["m"].status == "fail":
                        report.verdict = "fail"
            active = [
                i for i in active if reports[i].verdict != "fail" and is_undecided(reports[i].metrics["m"])
            ]  # fmt: skip
            if not active:
                break
        failed += any(
            report.verdict == "fail" or report.metrics["m"].status == "fail" for report in reports
        )
    return failed / runs, looks_taken / (runs * prompts)


def test_the_sequential_rule_holds_the_error_rate_across_looks() -> None:
    runs, error_rate = 3000, 0.05
    margin = 3 * math.sqrt(error_rate * (1 - error_rate) / runs)
    rate, looks = simulate_no_op_prs(runs, sequential=True, between_examples=0.0, seed=11)
    assert looks > 2.5  # most prompts were looked at again and again
    assert rate <= error_rate + margin
    naive, _ = simulate_no_op_prs(runs, sequential=False, between_examples=0.0, seed=11)
    assert naive > error_rate + margin  # re-testing every look at the full level inflates it


def test_the_sequential_rule_holds_when_examples_differ_in_how_the_change_suits_them() -> None:
    """Per-example effects that cancel out over the eval set: more samples shrink only the
    sampling noise, so the looks correlate more; the rule needs no assumption about that."""
    runs, error_rate = 2000, 0.05
    margin = 3 * math.sqrt(error_rate * (1 - error_rate) / runs)
    rate, looks = simulate_no_op_prs(runs, sequential=True, between_examples=0.5, seed=12)
    assert looks > 2.5
    assert rate <= error_rate + margin


# --- end to end, against the noisy stub -------------------------------------------------------


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMStub]:
    with noisy_stub(monkeypatch, "adaptive") as server:
        yield server


def build_repo(
    tmp_path: Path,
    stub: LLMStub,
    head: dict[str, str],
    *,
    temperature: float = 0.7,
    examples: int = 16,
    gate: str = "gate:\n  samples: auto\n  max_samples: 3\n",
    metrics: str = "  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n",
) -> RepoBuilder:
    """Prompts `head` on branch pr (BASE on main), one eval set of short sentences each."""
    rng = random.Random(5)
    texts = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(examples)]
    evals = "".join(
        json.dumps({"id": f"ex-{i}", "vars": {"text": t}, "expected": t}) + "\n"
        for i, t in enumerate(texts)
    )
    config = config_yaml(stub, tmp_path / "mlflow.db", metrics=metrics).replace(
        "  concurrency: 4\n", f"  concurrency: 4\n  temperature: {temperature}\n"
    )
    builder = RepoBuilder(tmp_path / "repo")
    files = {"promptgate.yaml": config + gate}
    for path in head:
        files[path] = BASE
        files[f"evals/{Path(path).stem}.jsonl"] = evals
    builder.commit(files, "prompts")
    builder.branch("pr")
    builder.commit(head, "change")
    return builder


def gate(builder: RepoBuilder, tmp_path: Path) -> GateResult:
    return evaluate(
        GateRequest(repo=builder.root, base="main", head="pr", cache_path=tmp_path / "c.sqlite3")
    )


def test_an_undecided_prompt_gets_rounds_up_to_max_samples_and_a_rerun_makes_no_call(
    tmp_path: Path, stub: LLMStub
) -> None:
    """max_drop 0 leaves a reworded (no-op) prompt undecided at every look: three rounds."""
    builder = build_repo(
        tmp_path,
        stub,
        {"prompts/a.txt": REWORDED},
        metrics="  bleu: { max_drop: 0 }\n  rougeL: { max_drop: 0 }\n",
    )
    first = gate(builder, tmp_path).report
    [prompt] = first.prompts
    assert first.gate is not None and first.gate.adaptive and first.gate.rounds == 3
    assert first.gate.max_samples == 3 and SEQUENTIAL_RULE in first.gate.rule
    assert prompt.samples == 3
    assert [entry.samples for entry in prompt.rounds] == [1, 2, 3]
    assert [entry.requests for entry in prompt.rounds] == [32, 32, 32]
    assert first.calls.requested == 96 and stub.request_count == 96
    for metric in prompt.metrics.values():
        assert [look.samples for look in metric.looks] == [1, 2, 3]
        assert [look.share for look in metric.looks] == pytest.approx(spending_shares(3))
        assert metric.p_sequential == pytest.approx(sequential_p_value(metric.looks))
    summary = sampling_summary(prompt)
    assert summary is not None and "3 sample(s) per example and version, 3 rounds" in summary

    again = gate(builder, tmp_path).report
    assert again.calls.made == 0 and again.calls.cached == 96
    assert again.prompts[0].metrics == prompt.metrics and again.verdict == first.verdict


def test_a_clear_regression_fails_in_the_first_round_without_more_calls(
    tmp_path: Path, stub: LLMStub
) -> None:
    builder = build_repo(
        tmp_path, stub, {"prompts/a.txt": REGRESSED, "prompts/b.txt": REWORDED}, examples=30
    )
    report = gate(builder, tmp_path).report
    by_path = {prompt.path: prompt for prompt in report.prompts}
    regressed = by_path["prompts/a.txt"]
    assert report.verdict == "fail" and regressed.verdict == "fail"
    assert len(regressed.rounds) == 1 and regressed.samples == 1
    assert regressed.metrics["rougeL"].status == "fail"
    # The no-op prompt beside it may take more rounds; the regressed one took none.
    assert report.calls.requested == 60 + sum(r.requests for r in by_path["prompts/b.txt"].rounds)


def test_at_temperature_0_auto_is_one_sample_and_the_fixed_design(
    tmp_path: Path, stub: LLMStub
) -> None:
    auto_repo = build_repo(tmp_path / "auto", stub, {"prompts/a.txt": REWORDED}, temperature=0.0)
    auto = gate(auto_repo, tmp_path / "auto").report
    [prompt] = auto.prompts
    assert auto.calls.requested == 32 and auto.gate is not None and auto.gate.rounds == 1
    assert prompt.rounds == [] and prompt.samples == 1 and sampling_summary(prompt) is None
    assert all(m.looks == [] and m.p_sequential is None for m in prompt.metrics.values())

    fixed_repo = build_repo(
        tmp_path / "fixed",
        stub,
        {"prompts/a.txt": REWORDED},
        temperature=0.0,
        gate="gate:\n  samples: 1\n",
    )
    fixed = gate(fixed_repo, tmp_path / "fixed").report
    assert fixed.prompts[0].metrics == prompt.metrics  # the same answers, the same figures


def test_the_comment_says_how_many_samples_and_rounds(tmp_path: Path, stub: LLMStub) -> None:
    builder = build_repo(
        tmp_path,
        stub,
        {"prompts/a.txt": REWORDED},
        metrics="  bleu: { max_drop: 0 }\n  rougeL: { max_drop: 0 }\n",
    )
    markdown = render_markdown(gate(builder, tmp_path).report)
    # (escape.inline writes ':' as an entity, which GitHub shows as ':')
    assert (
        "Sampling: adaptive sampling&#58; 3 sample(s) per example and version, 3 rounds, 96 requests"
        in (markdown)
    )
    assert "adaptive sampling, 1 to 3 samples per example and version (3 rounds)" in markdown
    assert "look k of L may spend" in markdown


def test_samples_and_max_samples_are_checked() -> None:
    prompts = "version: 1\nprompts:\n  - path: p.txt\n    dataset: e.jsonl\n"
    assert parse_config(prompts + "gate:\n  samples: auto\n").gate.adaptive
    assert parse_config(prompts + "gate:\n  samples: 3\n").gate.first_samples == 3
    assert GateSettings(samples="auto").first_samples == 1
    with pytest.raises(BadInput, match="max_samples bounds `samples: auto`"):
        parse_config(prompts + "gate:\n  samples: 2\n  max_samples: 5\n")
    for bad in ("lots", "0", "51", "-1"):
        with pytest.raises(BadInput, match="samples"):
            parse_config(prompts + f"gate:\n  samples: {bad}\n")
    with pytest.raises(BadInput, match="max_samples"):
        parse_config(prompts + "gate:\n  samples: auto\n  max_samples: 1\n")


def test_a_sharded_run_refuses_auto(tmp_path: Path, stub: LLMStub) -> None:
    builder = build_repo(tmp_path, stub, {"prompts/a.txt": REWORDED})
    with pytest.raises(BadInput, match="shards made ahead of the merge cannot"):
        run_shard(
            GateRequest(repo=builder.root, base="main", head="pr"),
            parse_shard("1/2"),
            tmp_path / "shard",
        )
    assert stub.request_count == 0
