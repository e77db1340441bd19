"""The gate's verdict on one metric: delta, paired bootstrap interval, and the rule."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu

import promptgate.compare as compare_module
from promptgate.compare import (
    bootstrap_deltas,
    compare_metric,
    resample_blocks,
)
from promptgate.config import GATE_RULE, MetricConfig
from promptgate.metrics.base import IndexArray, ScoredSide
from promptgate.metrics.bleu import Bleu
from promptgate.report.format import format_score
from promptgate.report.model import MetricResult

RESAMPLES = 2000
SEED = 20240601


def side(values: object) -> ScoredSide:
    return ScoredSide(np.asarray(values, dtype=np.float64))


def compare(
    baseline: ScoredSide | None,
    candidate: ScoredSide | None,
    max_drop: float = 0.02,
    min: float | None = None,
    *,
    seed: int = SEED,
    resamples: int = RESAMPLES,
) -> MetricResult:
    return compare_metric(
        baseline,
        candidate,
        MetricConfig(max_drop=max_drop, min=min),
        confidence=0.95,
        resamples=resamples,
        seed=seed,
    )


class MedianSide(ScoredSide):
    """A non-mean aggregate without a batch method: the general, per-resample path."""

    def aggregate(self, indices: IndexArray | None = None) -> float:
        values = self.per_example if indices is None else self.per_example[indices]
        return float(np.median(values))


class MeanViaGeneralPath(ScoredSide):
    def aggregate(self, indices: IndexArray | None = None) -> float:
        return super().aggregate(indices)


@pytest.fixture
def baseline_scores() -> np.ndarray:
    return np.random.default_rng(1).uniform(0.4, 0.9, size=60)


def test_gate_rule_is_stated() -> None:
    assert "max_drop" in GATE_RULE and "min" in GATE_RULE


def test_same_seed_gives_the_same_interval(baseline_scores: np.ndarray) -> None:
    noisy = baseline_scores + np.random.default_rng(2).normal(0, 0.05, size=60)
    first = compare(side(baseline_scores), side(noisy))
    again = compare(side(baseline_scores), side(noisy))
    other_seed = compare(side(baseline_scores), side(noisy), seed=SEED + 1)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other_seed.ci_low, other_seed.ci_high)
    assert first.delta == other_seed.delta


def test_a_clear_systematic_drop_fails(baseline_scores: np.ndarray) -> None:
    dropped = baseline_scores - 0.10 + np.random.default_rng(3).normal(0, 0.02, size=60)
    result = compare(side(baseline_scores), side(dropped))
    assert result.status == "fail"
    assert result.delta == pytest.approx(dropped.mean() - baseline_scores.mean())
    assert result.delta is not None and result.delta < -0.08
    assert result.ci_high is not None and result.ci_high < -0.05
    assert result.reason is not None
    # the reason speaks the table's number format
    shown = format_score("rougeL", result.delta, signed=True)
    assert "max_drop" in result.reason and shown in result.reason


def test_small_pure_noise_passes(baseline_scores: np.ndarray) -> None:
    noisy = baseline_scores + np.random.default_rng(4).normal(0, 0.03, size=60)
    result = compare(side(baseline_scores), side(noisy))
    assert result.status == "pass"
    assert result.reason is None
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low < 0 < result.ci_high


def test_a_significant_drop_within_max_drop_passes(baseline_scores: np.ndarray) -> None:
    dropped = baseline_scores - 0.01
    result = compare(side(baseline_scores), side(dropped), max_drop=0.02)
    assert result.ci_high is not None and result.ci_high < 0  # real, but small enough
    assert result.delta == pytest.approx(-0.01)
    assert result.status == "pass"


def test_a_large_drop_on_too_few_noisy_examples_passes() -> None:
    baseline = side([0.2, 0.9, 0.3, 0.8])
    candidate = side([0.9, 0.1, 0.2, 0.6])  # mean -0.1, but two examples went up
    result = compare(baseline, candidate, max_drop=0.02)
    assert result.delta == pytest.approx(-0.1)
    assert result.ci_high is not None and result.ci_high > 0
    assert result.status == "pass"


def test_the_interval_contains_the_delta(baseline_scores: np.ndarray) -> None:
    for seed in range(5):
        candidate = baseline_scores + np.random.default_rng(seed).normal(-0.02, 0.05, size=60)
        result = compare(side(baseline_scores), side(candidate))
        assert result.ci_low is not None and result.ci_high is not None
        assert result.delta is not None
        assert result.ci_low < result.delta < result.ci_high


def test_the_interval_is_the_percentile_interval_of_replayed_resamples(
    baseline_scores: np.ndarray,
) -> None:
    candidate = baseline_scores + np.random.default_rng(5).normal(0, 0.05, size=60)
    result = compare(side(baseline_scores), side(candidate))
    draws = [
        candidate[row].mean() - baseline_scores[row].mean()
        for rows in resample_blocks(60, RESAMPLES, SEED)
        for row in rows
    ]
    assert len(draws) == RESAMPLES
    low, high = np.quantile(draws, [0.025, 0.975])
    assert result.ci_low == pytest.approx(low, abs=1e-12)
    assert result.ci_high == pytest.approx(high, abs=1e-12)


def test_mean_fast_path_agrees_with_the_general_path(baseline_scores: np.ndarray) -> None:
    candidate = baseline_scores + np.random.default_rng(6).normal(-0.01, 0.05, size=60)
    fast = compare(side(baseline_scores), side(candidate))
    general = compare(MeanViaGeneralPath(baseline_scores), MeanViaGeneralPath(candidate))
    assert fast.ci_low == pytest.approx(general.ci_low, abs=1e-12)
    assert fast.ci_high == pytest.approx(general.ci_high, abs=1e-12)


def test_a_custom_aggregate_is_bootstrapped_by_its_own_rule() -> None:
    baseline = MedianSide(np.array([0.1, 0.5, 0.5, 0.9, 0.9]))
    candidate = MedianSide(np.array([0.1, 0.4, 0.4, 0.9, 0.9]))
    draws = bootstrap_deltas(baseline, candidate, resamples=300, seed=1)
    expected = [
        float(np.median(candidate.per_example[row]) - np.median(baseline.per_example[row]))
        for rows in resample_blocks(5, 300, 1)
        for row in rows
    ]
    assert draws.tolist() == expected
    assert compare(baseline, candidate).delta == pytest.approx(-0.1)


def test_resample_blocks_bound_memory_but_draw_every_resample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compare_module, "_BLOCK_CELLS", 30)
    blocks = list(resample_blocks(10, 7, seed=3))
    assert [block.shape for block in blocks] == [(3, 10), (3, 10), (1, 10)]
    assert all(((block >= 0) & (block < 10)).all() for block in blocks)


def test_identical_outputs_give_exactly_zero() -> None:
    scores = np.random.default_rng(8).uniform(0, 1, size=37)
    result = compare(side(scores), side(scores.copy()))
    assert (result.delta, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.status == "pass"


def test_the_min_floor_fails_a_candidate_below_it_even_without_a_drop() -> None:
    result = compare(side([0.5, 0.6]), side([0.5, 0.6]), max_drop=0.02, min=0.7)
    assert result.status == "fail"
    assert result.reason == "candidate 0.550 is below the floor min 0.700"
    assert result.min == 0.7 and result.threshold == 0.02


def test_a_drop_and_a_floor_are_both_reported(baseline_scores: np.ndarray) -> None:
    result = compare(side(baseline_scores), side(baseline_scores - 0.3), min=0.5)
    assert result.status == "fail"
    assert result.reason is not None
    assert "max_drop" in result.reason and "below the floor min 0.500" in result.reason


def test_an_added_prompt_is_judged_by_its_floor_alone() -> None:
    above = compare(None, side([0.8, 0.9]), min=0.5)
    below = compare(None, side([0.2, 0.3]), min=0.5)
    no_floor = compare(None, side([0.0, 0.0]))
    assert (above.baseline, above.delta, above.ci_low, above.ci_high) == (None,) * 4
    assert above.candidate == pytest.approx(0.85)
    assert above.status == "pass" and no_floor.status == "pass"
    assert below.status == "fail"
    assert below.reason == "candidate 0.250 is below the floor min 0.500"


def test_a_deleted_prompt_passes_with_no_candidate() -> None:
    result = compare(side([0.9, 0.1]), None, min=0.95)
    assert result.baseline == pytest.approx(0.5)
    assert (result.candidate, result.delta, result.ci_low, result.ci_high) == (None,) * 4
    assert result.status == "pass"


def test_one_example_gives_a_degenerate_interval() -> None:
    result = compare(side([0.9]), side([0.5]), max_drop=0.1)
    assert result.delta == pytest.approx(-0.4)
    assert result.ci_low == result.ci_high == result.delta
    assert result.status == "fail"  # one example is all the evidence there is


def test_no_examples_give_nulls_and_pass() -> None:
    result = compare(side([]), side([]), min=0.5)
    assert (result.baseline, result.candidate, result.delta) == (None, None, None)
    assert (result.ci_low, result.ci_high) == (None, None)
    assert result.status == "pass"


def test_unpaired_sides_are_a_bug_not_a_verdict() -> None:
    with pytest.raises(ValueError, match="unpaired scores"):
        compare(side([0.1, 0.2]), side([0.1]))


def test_example_deltas_are_candidate_minus_baseline() -> None:
    from promptgate.evaluation import ExampleResult

    example = ExampleResult(
        id="e",
        expected="x",
        baseline_scores={"a": 0.5, "b": 0.2},
        candidate_scores={"a": 0.25, "b": 0.5},
    )
    assert example.deltas() == pytest.approx({"a": -0.25, "b": 0.3})


# --- BLEU: corpus BLEU is resampled, not averaged ----------------------------------------

REFERENCES = [
    f"the report on item {i} says sales rose by {i % 7} percent in the north region"
    for i in range(30)
]
BASELINE = [
    f"the report on item {i} says sales rose {i % 7} percent in the north" for i in range(30)
]
CANDIDATE = [
    f"item {i} report: sales went up {i % 5} percent" if i % 3 else BASELINE[i] for i in range(30)
]


def test_bleu_bootstrap_equals_a_slow_loop_over_sacrebleu_corpus_bleu() -> None:
    metric = Bleu(MetricConfig(max_drop=2.0))
    baseline = metric.score([[t] for t in BASELINE], REFERENCES)
    candidate = metric.score([[t] for t in CANDIDATE], REFERENCES)
    result = compare(baseline, candidate, max_drop=2.0, resamples=300)

    def corpus(outputs: list[str], row: IndexArray) -> float:
        return sacrebleu.corpus_bleu(
            [outputs[i] for i in row], [[REFERENCES[i] for i in row]]
        ).score

    slow = [
        corpus(CANDIDATE, row) - corpus(BASELINE, row)
        for rows in resample_blocks(30, 300, SEED)
        for row in rows
    ]
    low, high = np.quantile(slow, [0.025, 0.975])
    assert result.delta == corpus(CANDIDATE, np.arange(30)) - corpus(BASELINE, np.arange(30))
    assert (result.ci_low, result.ci_high) == (low, high)
    assert result.status == "fail"  # a real regression: most outputs were reworded


def test_identical_bleu_outputs_give_exactly_zero() -> None:
    metric = Bleu(MetricConfig(max_drop=2.0))
    baseline = metric.score([[t] for t in BASELINE], REFERENCES)
    candidate = metric.score([[t] for t in BASELINE], REFERENCES)
    result = compare(baseline, candidate, max_drop=2.0)
    assert (result.delta, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.status == "pass"
