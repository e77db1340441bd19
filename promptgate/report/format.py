"""How numbers, verdicts and paths read in every report (Markdown comment, terminal)."""

from __future__ import annotations

import math
from collections.abc import Callable

from promptgate.report.model import (
    CallStats,
    DatasetDiff,
    MetricResult,
    PartialRun,
    PromptReport,
    Report,
    Usage,
)

MINUS = "−"  # U+2212: lines up with "+" in proportional fonts
DEFAULT_CONFIDENCE = 0.95

VERDICT_ICONS = {"pass": "✅", "fail": "❌", "error": "⚠️"}
VERDICT_WORDS = {"pass": "gate passed", "fail": "gate failed", "error": "could not evaluate"}
PROMPT_ICONS = {"pass": "✅", "fail": "❌", "new": "🆕", "removed": "🗑️", "error": "⚠️"}


def decimals(metric: str) -> int:
    """BLEU lives on 0-100 (one decimal is plenty); the others on about 0-1."""
    return 1 if metric.lower().startswith("bleu") else 3


def format_score(metric: str, value: float | None, *, signed: bool = False) -> str:
    """A metric value at the metric's precision; `signed` prefixes + or − (not for zero)."""
    if value is None:
        return "–"
    if math.isnan(value):
        return "NaN"
    text = f"{abs(value):.{decimals(metric)}f}"
    if math.isinf(value) or float(text) != 0:
        if value < 0:
            return MINUS + text
        if signed:
            return "+" + text
    return text


def format_interval(metric: str, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "–"
    return f"[{format_score(metric, low, signed=True)}, {format_score(metric, high, signed=True)}]"


def format_threshold(metric: str, result: MetricResult) -> str:
    """`−max_drop` where a drop was tested (not for an added prompt), and the floor if any."""
    parts = [] if result.delta is None else [format_score(metric, -result.threshold)]
    if result.min is not None:
        parts.append(f"min {format_score(metric, result.min)}")
    return ", ".join(parts) or "–"


def status_words(result: MetricResult) -> str:
    """`fail`, `pass`, or `pass (not significant)` for a drop beyond max_drop that the PR-level
    test does not call significant: the table's numbers and the words agree."""
    if result.status == "fail":
        return "fail"
    beyond = result.delta is not None and result.delta < -result.threshold
    return "pass (not significant)" if beyond and result.significant is False else "pass"


def confidence_label(report: Report) -> str:
    confidence = report.gate.confidence if report.gate else DEFAULT_CONFIDENCE
    return f"{confidence * 100:g}% CI"


def display_path(prompt: PromptReport) -> str:
    """`old → new` for a rename, else the path; raw (escape before display)."""
    if prompt.change == "renamed" and prompt.old_path and prompt.old_path != prompt.path:
        return f"{prompt.old_path} → {prompt.path}"
    return prompt.path


def dataset_change_counts(diff: DatasetDiff) -> str:
    """`2 added, 1 removed, 3 with a changed reference, 0 with changed vars` (matched by id)."""
    if diff.examples_changed == 0:
        return "no example added, removed or changed: reordered or reformatted"
    return (
        f"{diff.added} added, {diff.removed} removed, "
        f"{diff.reference_changed} with a changed reference, {diff.vars_changed} with changed vars"
    )


def short_sha(sha: str) -> str:
    return sha[:7]


def stopped_early(report: Report) -> bool:
    """The run ended on an error before any prompt was judged (bad input, git failure)."""
    return report.verdict == "error" and not report.prompts and bool(report.errors)


def partial_words(partial: PartialRun) -> str:
    """`2 of 40 examples`: how much of the eval sets a partial run judged."""
    return f"{partial.examples} of {partial.of} examples"


def nothing_judged_line(report: Report) -> str:
    if stopped_early(report):
        return "The gate stopped before judging any prompt; fix the error above and run it again."
    return "No prompt file changed between base and head; nothing to evaluate."


def calls_summary(calls: CallStats, separator: str = ", ") -> str:
    """`24 requested, 0 cached, 24 made, 0 retried, 0 failed` (+ skipped, when any were)."""
    parts = [
        f"{calls.requested} requested",
        f"{calls.cached} cached",
        f"{calls.made} made",
        f"{calls.retried} retried",
        f"{calls.failed} failed",
    ]
    if calls.skipped:
        parts.append(f"{calls.skipped} not sent after a fatal error")
    return separator.join(parts)


def sampling_summary(prompt: PromptReport) -> str | None:
    """Under samples: auto, how many generations the prompt took and why it stopped."""
    if not prompt.rounds:
        return None
    rounds = len(prompt.rounds)
    requests = sum(entry.requests for entry in prompt.rounds)
    text = (
        f"adaptive sampling: {prompt.samples} sample(s) per example and version, "
        f"{rounds} round{'s' if rounds != 1 else ''}, {requests} requests"
    )
    undecided = prompt.rounds[-1].undecided
    if undecided and prompt.verdict in ("pass", "new"):
        text += f"; still undecided at gate.max_samples: {', '.join(undecided)}"
    return text


def format_percent(change: float) -> str:
    """A relative change: `+27.3 %`, `−4.0 %`."""
    digits = f"{abs(change) * 100:.1f}"
    sign = "" if float(digits) == 0 else "+" if change > 0 else MINUS
    return f"{sign}{digits} %"


def usage_summary(prompt: PromptReport) -> str | None:
    """What a call of each version costs, baseline → candidate: tokens, median latency and, with
    a price, USD per 1,000 calls; each with the relative change. None without figures."""
    baseline, candidate = prompt.usage.get("baseline"), prompt.usage.get("candidate")
    figures: list[tuple[str, Callable[[Usage], float | None], str]] = [
        ("tokens per call", lambda u: u.tokens_per_call, "{:,.0f}"),
        ("median latency", lambda u: u.latency_ms_p50, "{:,.0f} ms"),
        ("per 1,000 calls", lambda u: u.cost_per_1000_calls, "${:,.2f}"),
    ]
    parts = []
    for name, value_of, shown in figures:
        before = value_of(baseline) if baseline else None
        after = value_of(candidate) if candidate else None
        if before is not None and after is not None:
            change = f" ({format_percent(after / before - 1)})" if before > 0 else ""
            parts.append(f"{name} {shown.format(before)} → {shown.format(after)}{change}")
        elif after is not None or before is not None:
            parts.append(f"{name} {shown.format(after if after is not None else before)}")
    return "; ".join(parts) or None


def refusal_summary(prompt: PromptReport) -> str | None:
    """How many answers a content filter or the model refused, per version: they are scored as
    the text returned (a filter's usually none, a model's its refusal), so a prompt that trips
    the filter or makes the model decline regresses."""
    refused = {side: usage.refused for side, usage in prompt.usage.items() if usage.refused}
    if not refused:
        return None
    counts = " and ".join(
        f"{count} of {prompt.usage[side].calls} {side}" for side, count in refused.items()
    )
    return (
        f"refused: {counts} answers (content filter or model refusal; scored as the text "
        "returned, often none)"
    )
