"""Comparison of baseline and candidate scores: delta, paired bootstrap interval, status.

The bootstrap is paired: each resample draws example indices once and scores both prompt
versions on the same draw, so per-example difficulty cancels out of the delta. A metric whose
side aggregates by a plain mean takes a vectorised path; any other aggregate (corpus BLEU) is
recomputed per resample, in one batch when the side offers `aggregate_batch`.

Edge cases, decided here:
- added prompt (no baseline): baseline, delta and interval are null; only `min` can fail it;
- deleted prompt (no candidate): everything but the baseline is null and the metric passes;
- no examples: all numbers null and the metric passes (an empty eval set is an input error,
  caught where the eval set is read, not a reason to fail a metric);
- one example: every resample is that example, so the interval is [delta, delta] and the
  standard error 0: the drop is certain.

The status set here treats the metric as the PR's only test; the gate decides every metric of
the PR again together (error_control.py), which is what a report shows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from promptgate.config import DEFAULT_ERROR_RATE, MetricConfig
from promptgate.error_control import decide, floor_reasons, one_sided_p_value
from promptgate.metrics.base import FloatArray, IndexArray, ScoredSide
from promptgate.report.model import MetricResult

#: Resample indices are drawn in blocks of at most this many cells, to bound memory.
_BLOCK_CELLS = 1_000_000


@runtime_checkable
class BatchAggregate(Protocol):
    """A side that can aggregate many resamples at once (rows of an index matrix)."""

    def aggregate_batch(self, resamples: IndexArray) -> FloatArray: ...


def resample_blocks(n_examples: int, resamples: int, seed: int) -> Iterator[IndexArray]:
    """The bootstrap's index draws, `resamples` rows of `n_examples` indices, in blocks.

    Deterministic in (n_examples, resamples, seed); tests replay it to check the fast paths.
    """
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // max(n_examples, 1))
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        yield rng.integers(0, n_examples, size=(rows, n_examples), dtype=np.intp)


def bootstrap_deltas(
    baseline: ScoredSide, candidate: ScoredSide, *, resamples: int, seed: int
) -> FloatArray:
    """candidate.aggregate(idx) - baseline.aggregate(idx) for each paired resample idx."""
    n_examples = _check_paired(baseline, candidate)
    blocks = resample_blocks(n_examples, resamples, seed)
    if _is_plain_mean(baseline) and _is_plain_mean(candidate):
        return np.concatenate(
            [
                candidate.per_example[rows].mean(axis=1) - baseline.per_example[rows].mean(axis=1)
                for rows in blocks
            ]
        )
    return np.concatenate(
        [_aggregate_rows(candidate, rows) - _aggregate_rows(baseline, rows) for rows in blocks]
    )


def interval(draws: FloatArray, confidence: float) -> tuple[float, float]:
    """The central `confidence` interval of bootstrap draws (percentile method)."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return float(low), float(high)


def compare_metric(
    baseline: ScoredSide | None,
    candidate: ScoredSide | None,
    config: MetricConfig,
    *,
    confidence: float,
    resamples: int,
    seed: int,
    error_rate: float = DEFAULT_ERROR_RATE,
    metric: str = "",
) -> MetricResult:
    """One metric's figures for one prompt, and its verdict as if it were the PR's only test
    (config.GATE_RULE); `error_control.control_pr_errors` decides it again among all of them."""
    base_score = _finite_or_none(baseline.aggregate()) if baseline is not None else None
    cand_score = _finite_or_none(candidate.aggregate()) if candidate is not None else None

    if baseline is None or candidate is None or base_score is None or cand_score is None:
        # Added, deleted or empty: no pairs to compare; only the floor can apply.
        reasons = [] if candidate is None else floor_reasons(metric, cand_score, config.min)
        return MetricResult(
            baseline=base_score,
            candidate=cand_score,
            delta=None,
            ci_low=None,
            ci_high=None,
            status="fail" if reasons else "pass",
            reason="; ".join(reasons) or None,
            threshold=config.max_drop,
            min=config.min,
        )

    delta = cand_score - base_score
    draws = bootstrap_deltas(baseline, candidate, resamples=resamples, seed=seed)
    ci_low, ci_high = interval(draws, confidence)
    n_examples = len(baseline.per_example)
    degrees_of_freedom = max(n_examples - 1, 1)
    # The bootstrap's spread of a mean is sqrt((n-1)/n) of its unbiased standard error.
    standard_error = float(np.std(draws)) * math.sqrt(n_examples / degrees_of_freedom)
    p_value = one_sided_p_value(delta, standard_error, degrees_of_freedom)
    result = MetricResult(
        baseline=base_score,
        candidate=cand_score,
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        status="pass",
        threshold=config.max_drop,
        min=config.min,
        standard_error=standard_error,
        degrees_of_freedom=degrees_of_freedom,
        p_value=p_value,
    )
    return decide(
        result, metric=metric, p_adjusted=p_value, level=error_rate, error_rate=error_rate
    )


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _is_plain_mean(side: ScoredSide) -> bool:
    return type(side).aggregate is ScoredSide.aggregate


def _aggregate_rows(side: ScoredSide, rows: IndexArray) -> FloatArray:
    if isinstance(side, BatchAggregate):
        return side.aggregate_batch(rows)
    return np.array([side.aggregate(row) for row in rows], dtype=np.float64)


def _check_paired(baseline: ScoredSide, candidate: ScoredSide) -> int:
    n_examples = len(baseline.per_example)
    if len(candidate.per_example) != n_examples:
        raise ValueError(
            f"unpaired scores: baseline has {n_examples} examples, "
            f"candidate {len(candidate.per_example)}"
        )
    return n_examples
