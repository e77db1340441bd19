"""The PR-level decision (error_control.py): Holm's step-down over one-sided tests of every
(prompt, metric) a PR changes, on constructed p-values and score deltas whose answers are known."""

from __future__ import annotations

import random
from statistics import NormalDist

import pytest

from promptgate.error_control import (
    control_pr_errors,
    holm_adjusted,
    holm_levels,
    one_sided_p_value,
    t_cdf,
    t_quantile,
)
from promptgate.report.format import status_words
from promptgate.report.model import MetricResult, PromptReport

NORMAL = NormalDist()


def metric(
    delta: float, standard_error: float, max_drop: float = 0.02, examples: int = 60
) -> MetricResult:
    return MetricResult(
        baseline=0.8,
        candidate=0.8 + delta,
        delta=delta,
        ci_low=delta - 2 * standard_error,
        ci_high=delta + 2 * standard_error,
        threshold=max_drop,
        status="pass",
        standard_error=standard_error,
        degrees_of_freedom=examples - 1,
        p_value=one_sided_p_value(delta, standard_error, examples - 1),
    )


def prompt(path: str, **metrics: MetricResult) -> PromptReport:
    return PromptReport(
        path=path, old_path=None, change="modified", verdict="pass", examples=60, metrics=metrics
    )


def test_holm_adjusts_a_textbook_example() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x, 1x, each at least the one before
    assert holm_adjusted([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_levels([0.01, 0.04, 0.03, 0.005], 0.05) == pytest.approx(
        [0.05 / 3, 0.05, 0.05 / 2, 0.05 / 4]
    )
    assert holm_adjusted([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm_adjusted([]) == []


def test_the_one_sided_p_value_is_the_t_tail_of_the_delta() -> None:
    # reference values: scipy.stats.t.cdf / t.ppf
    assert one_sided_p_value(-0.04, 0.02, 5) == pytest.approx(0.050969739414929174, rel=1e-12)
    assert t_cdf(-3.14, 59) == pytest.approx(0.001319624859804307, rel=1e-9)
    assert t_cdf(1.5, 10) == pytest.approx(0.9177463367772799, rel=1e-12)
    assert t_quantile(1 - 0.01 / 60, 59) == pytest.approx(3.810425086460376, rel=1e-9)
    assert t_quantile(0.975, 5) == pytest.approx(2.5705818356363146, rel=1e-9)
    # heavier tails than the normal's for a small sample, the normal's for a large one
    assert t_cdf(-3.0, 9) > NORMAL.cdf(-3.0)
    assert t_cdf(-3.0, 100_000) == pytest.approx(NORMAL.cdf(-3.0), rel=1e-3)
    assert one_sided_p_value(-0.05, 0.0, 59) == 0.0  # no spread: the drop is certain
    assert one_sided_p_value(0.0, 0.0, 59) == 1.0


def test_a_clear_drop_fails_among_sixty_quiet_metrics() -> None:
    prompts = [
        prompt(
            f"p{k}.txt",
            bleu=metric(0.0, 0.02),
            rougeL=metric(0.001, 0.02),
            semantic=metric(-0.002, 0.02),
        )
        for k in range(19)
    ]
    prompts.append(
        prompt(
            "bad.txt",
            bleu=metric(0.0, 0.02),
            rougeL=metric(-0.10, 0.01),
            semantic=metric(0.0, 0.02),
        )
    )
    assert control_pr_errors(prompts, error_rate=0.01) == 60
    failed = [(p.path, n) for p in prompts for n, r in p.metrics.items() if r.status == "fail"]
    assert failed == [("bad.txt", "rougeL")]
    decided = prompts[-1].metrics["rougeL"]
    assert decided.significant and decided.p_adjusted is not None and decided.p_adjusted < 1e-6
    assert decided.decision_level == pytest.approx(0.01 / 60)  # the smallest p is tested first
    assert decided.decision_high is not None and decided.decision_high < 0
    assert decided.reason and "Holm-adjusted" in decided.reason and "−0.100" in decided.reason


def test_a_drop_significant_alone_is_not_significant_among_sixty() -> None:
    """t = -2.8 (p 0.0034) passes a lone test at 1 % but not Holm's first step at 1 %/60."""
    borderline = metric(-0.056, 0.02)
    alone = [prompt("a.txt", bleu=borderline)]
    control_pr_errors(alone, error_rate=0.01)
    assert alone[0].metrics["bleu"].status == "fail"

    many = [prompt("a.txt", bleu=borderline)] + [
        prompt(f"p{k}.txt", bleu=metric(0.0, 0.02)) for k in range(59)
    ]
    control_pr_errors(many, error_rate=0.01)
    decided = many[0].metrics["bleu"]
    assert decided.status == "pass" and decided.significant is False
    assert status_words(decided) == "pass (not significant)"  # beyond max_drop, not significant
    assert status_words(many[1].metrics["bleu"]) == "pass"  # inside max_drop


def test_the_floor_fails_a_metric_whatever_the_test_says() -> None:
    floored = metric(0.0, 0.02).model_copy(update={"min": 0.9})
    prompts = [prompt("a.txt", rougeL=floored)]
    control_pr_errors(prompts, error_rate=0.01)
    assert prompts[0].metrics["rougeL"].status == "fail"
    assert "below the floor min 0.900" in (prompts[0].metrics["rougeL"].reason or "")


@pytest.mark.parametrize("tests_per_pr", [1, 6, 60])
def test_no_op_prs_fail_at_most_at_the_error_rate_however_many_metrics(tests_per_pr: int) -> None:
    """Seeded simulation: 10,000 PRs that change nothing, each with `tests_per_pr` metrics whose
    deltas are pure noise (max_drop 0, so only the test decides). The per-metric rule before
    (each metric on its own at 95 % two-sided) failed 2.5 % of single-metric PRs and 78 % of
    sixty-metric ones; Holm keeps every size at or under 1 %."""
    rng = random.Random(20261202 + tests_per_pr)
    runs, failed, failed_before = 10_000, 0, 0
    for _ in range(runs):
        prompts = []
        for k in range(tests_per_pr):
            se = rng.uniform(0.005, 0.05)
            delta = rng.gauss(0.0, se)
            prompts.append(prompt(f"p{k}.txt", rougeL=metric(delta, se, max_drop=0.0)))
        failed_before += any(
            (p.metrics["rougeL"].delta or 0) + 1.96 * (p.metrics["rougeL"].standard_error or 0) < 0
            for p in prompts
        )
        control_pr_errors(prompts, error_rate=0.01)
        failed += any(p.metrics["rougeL"].status == "fail" for p in prompts)
    assert failed / runs <= 0.013  # 1 % plus 3 standard errors of 10,000 draws
    if tests_per_pr == 60:
        assert failed_before / runs > 0.5


def test_a_metric_identical_on_every_example_does_not_dilute_the_others() -> None:
    """A reformatted prompt at temperature 0 scores the same everywhere: no test, so a drop on
    another prompt is tested at error_rate / 1, not / 4."""
    same = metric(0.0, 0.0)
    prompts = [prompt("reformatted.txt", bleu=same, rougeL=same, semantic=same)]
    prompts.append(prompt("a.txt", rougeL=metric(-0.06, 0.02)))  # t = -3.0, p about 0.002
    assert control_pr_errors(prompts, error_rate=0.01) == 1
    assert prompts[1].metrics["rougeL"].status == "fail"
    assert prompts[0].metrics["bleu"].p_adjusted is None
