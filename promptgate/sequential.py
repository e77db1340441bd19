"""Adaptive sampling (`gate.samples: auto`): more generations only where a metric is undecided.

At temperature > 0 a metric's delta is noisy, and more generations per example shrink the
noise. Under `auto`, every prompt starts with one generation per example and version; after
each round, a prompt with a metric still undecided gets one more generation for every example on
both sides (earlier answers come from the cache), up to `gate.max_samples`. Looking again and
again at growing data would inflate the error rate if each look were tested at the full level,
so each look k of L may spend only its share of it: the Kim-DeMets power family
s(t) = t^3 (close to O'Brien-Fleming's boundaries: little early, most at the last look) at
t = k / L. A metric's sequential p-value is the smallest, over the looks it had, of its look's
p-value over that look's share, min_k p_k / (s(t_k) - s(t_k-1)); Holm then runs on these, as
for a fixed design (error_control.py). By the union bound over looks, each sequential p-value is
a valid p-value whatever the stopping rule and however the looks correlate, so Holm on them
still holds the PR's error rate; with one look (fixed samples, or temperature 0) it is the
look's p-value and nothing changes.

A metric is decided when it fails, when its delta is certain (identical outputs), or when its
interval's lower end (at `gate.confidence`) is above -max_drop: a drop beyond max_drop is then
excluded, and more samples would only confirm the pass. Otherwise it is undecided.
"""

from __future__ import annotations

from collections.abc import Sequence

from promptgate.config import GATE_RULE
from promptgate.report.model import Look, MetricResult

#: The spending function's exponent (Kim & DeMets 1987; 3 is close to O'Brien-Fleming).
SPENDING_POWER = 3

#: The rule in one sentence, for the report and the comment (appended to config.GATE_RULE).
SEQUENTIAL_RULE = (
    "With samples: auto, a prompt whose metric is undecided gets more generations per example, "
    "up to max_samples; look k of L may spend (k/L)^3 - ((k-1)/L)^3 of the error rate, and "
    "Holm runs on each metric's smallest p-value over its looks, each divided by its look's "
    "share."
)


def gate_rule(adaptive: bool) -> str:
    """The gate's rule in words (`gate.rule`, the comment's footer), with the sequential
    sentence when sampling is adaptive."""
    return f"{GATE_RULE} {SEQUENTIAL_RULE}" if adaptive else GATE_RULE


def spending_shares(looks: int) -> list[float]:
    """The share of the error rate each of `looks` looks may spend; they sum to 1."""
    cumulative = [(k / looks) ** SPENDING_POWER for k in range(looks + 1)]
    return [cumulative[k] - cumulative[k - 1] for k in range(1, looks + 1)]


def sequential_p_value(looks: Sequence[Look]) -> float:
    """min over looks of p / share: a valid p-value over every look taken (union bound)."""
    return min(1.0, min(look.p_value / look.share for look in looks))


def is_undecided(result: MetricResult) -> bool:
    """Could more generations change this metric's verdict? (module docstring)"""
    if result.delta is None or result.ci_low is None or result.status == "fail":
        return False
    if result.standard_error == 0:
        return False  # identical outputs, or a certain delta: no more samples will move it
    return result.ci_low < -result.threshold


def with_look(
    result: MetricResult, earlier: MetricResult | None, samples: int, max_samples: int
) -> MetricResult:
    """`result`, this look's figures at `samples` generations per example, with its look added
    to the ones `earlier` had, and its sequential p-value. Look k is the one at k samples."""
    if result.p_value is None:
        return result
    share = spending_shares(max_samples)[samples - 1]
    looks = [
        *(earlier.looks if earlier else []),
        Look(samples=samples, p_value=result.p_value, share=share),
    ]
    return result.model_copy(update={"looks": looks, "p_sequential": sequential_p_value(looks)})
