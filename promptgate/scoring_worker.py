"""What the scoring worker process runs (scoring.py starts it and calls these by name).

Only the worker imports this module, and with it numpy, the bootstrap and the metric libraries:
the gate's process stays light, so its first request waits on none of them. Values cross the
process boundary as plain lists, so unpickling them needs no numpy either.
"""

from __future__ import annotations

import numpy as np

from promptgate.compare import bootstrap_deltas, compare_metric, interval
from promptgate.config import GateSettings
from promptgate.metrics import make_metric
from promptgate.metrics.base import Metric, ScoredSide
from promptgate.report.model import Side
from promptgate.scoring import Comparison, MetricConfigs, Noise, Rows, SideRows

_metrics: dict[tuple[str, str], Metric] = {}


def _metric(name: str, configs: MetricConfigs) -> Metric:
    config = configs[name]
    key = (name, config.model_dump_json())
    if key not in _metrics:
        _metrics[key] = make_metric(name, config)
    return _metrics[key]


def prepare(configs: MetricConfigs) -> dict[str, str]:
    """Import each metric's libraries and load its models; return the signatures."""
    signatures = {}
    for name in configs:
        metric = _metric(name, configs)
        metric.prepare()
        signatures[name] = metric.signature
    return signatures


def score_batch(configs: MetricConfigs, hypotheses: list[str], references: list[str]) -> Rows:
    """Each metric's row for each answer: `rows[name][i]` belongs to `hypotheses[i]`."""
    return {
        name: _metric(name, configs).score_samples(hypotheses, references).tolist()
        for name in configs
    }


def _sides(
    configs: MetricConfigs, sides: dict[Side, SideRows]
) -> dict[Side, dict[str, ScoredSide]]:
    scored: dict[Side, dict[str, ScoredSide]] = {}
    for side, data in sides.items():
        example_of = np.asarray(data.example_of, dtype=np.intp)
        scored[side] = {}
        for name in configs:
            rows = np.asarray(data.rows[name], dtype=np.float64)
            if rows.size == 0:
                rows = rows.reshape(0, 1)
            scored[side][name] = _metric(name, configs).side(rows, example_of, data.n_examples)
    return scored


def compare(configs: MetricConfigs, sides: dict[Side, SideRows], gate: GateSettings) -> Comparison:
    scored = _sides(configs, sides)
    results = {
        name: compare_metric(
            scored["baseline"][name] if "baseline" in scored else None,
            scored["candidate"][name],
            config,
            confidence=gate.confidence,
            resamples=gate.bootstrap_resamples,
            seed=gate.seed,
            error_rate=gate.error_rate,
            metric=name,
        )
        for name, config in configs.items()
    }
    per_example = {
        side: {name: scored_side.per_example.tolist() for name, scored_side in by_metric.items()}
        for side, by_metric in scored.items()
    }
    return Comparison(results, per_example)


def noise(
    configs: MetricConfigs, sides: dict[Side, SideRows], gate: GateSettings
) -> dict[str, Noise]:
    scored = _sides(configs, sides)
    figures = {}
    for name in configs:
        baseline, candidate = scored["baseline"][name], scored["candidate"][name]
        draws = bootstrap_deltas(
            baseline, candidate, resamples=gate.bootstrap_resamples, seed=gate.seed
        )
        low, high = interval(draws, gate.confidence)
        figures[name] = Noise(
            delta=candidate.aggregate() - baseline.aggregate(),
            ci_low=low,
            ci_high=high,
            standard_error=float(np.std(draws)),
        )
    return figures
