"""Token, latency and cost figures of a run's answers, and the optional gates on them.

Tokens are the server's own counts (`usage` of each answer; none from a server that sends
none). A cached answer counts with the figures of the call that first got it, so a re-run from
the cache reports what the prompt costs, not what the re-run cost. Cost needs the config's
`provider.price` in USD per million tokens: there is no built-in price list.
"""

from __future__ import annotations

from collections.abc import Iterable

from promptgate.config import GateSettings, PriceConfig
from promptgate.providers.base import Completion
from promptgate.report.format import format_percent
from promptgate.report.model import Side, Usage


def usage_of(answers: Iterable[Completion], price: PriceConfig | None) -> Usage:
    answers = list(answers)
    counted = [
        a for a in answers if a.prompt_tokens is not None and a.completion_tokens is not None
    ]
    prompt = sum(a.prompt_tokens for a in counted if a.prompt_tokens) if counted else None
    completion = (
        sum(a.completion_tokens for a in counted if a.completion_tokens) if counted else None
    )
    latencies = sorted(a.latency_ms for a in answers if a.latency_ms is not None)
    cost = None
    if price is not None and prompt is not None and completion is not None:
        cost = (prompt * price.input_per_mtok + completion * price.output_per_mtok) / 1_000_000
    return Usage(
        calls=len(answers),
        cached=sum(a.cached for a in answers),
        refused=sum(a.refusal is not None for a in answers),
        reported=len(counted),
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_ms_p50=_percentile(latencies, 0.50),
        latency_ms_p95=_percentile(latencies, 0.95),
        cost_usd=cost,
    )


def _percentile(ordered: list[float], quantile: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default), of sorted values."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * quantile
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def usage_reasons(usage: dict[Side, Usage], gate: GateSettings) -> list[str]:
    """Why the candidate costs or waits too much more per call than the baseline, by the
    optional gates (`gate.max_token_increase`, `gate.max_latency_increase`)."""
    baseline, candidate = usage.get("baseline"), usage.get("candidate")
    if baseline is None or candidate is None:
        return []
    reasons = []
    checks = (
        (
            "tokens per call",
            baseline.tokens_per_call,
            candidate.tokens_per_call,
            gate.max_token_increase,
            "gate.max_token_increase",
        ),
        (
            "median latency",
            baseline.latency_ms_p50,
            candidate.latency_ms_p50,
            gate.max_latency_increase,
            "gate.max_latency_increase",
        ),
    )
    for what, before, after, limit, setting in checks:
        if limit is None or before is None or after is None or before <= 0:
            continue
        change = after / before - 1
        if change > limit:
            reasons.append(
                f"{what} {format_percent(change)} is above {format_percent(limit)} ({setting})"
            )
    return reasons
