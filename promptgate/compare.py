"""Comparison of baseline and candidate scores: delta, paired bootstrap interval, status."""

from __future__ import annotations

GATE_RULE = (
    "A metric fails when its mean delta is below -max_drop and the upper end of the delta's "
    "paired bootstrap confidence interval is below 0 (a drop large enough to matter and unlikely "
    "to be noise), or when the candidate is below the metric's optional `min`. A prompt fails "
    "when any metric fails; the gate fails when any prompt fails."
)
