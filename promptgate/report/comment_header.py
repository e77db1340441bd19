"""The top of the comment: verdict, range, the summary table a reviewer reads first (every
prompt, failures first, each with its worst metric against its threshold), then what overrides
or warns about the whole run."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from promptgate.report import escape
from promptgate.report.format import (
    PROMPT_ICONS,
    VERDICT_ICONS,
    VERDICT_WORDS,
    display_path,
    format_interval,
    format_score,
    format_threshold,
    partial_words,
    short_sha,
    stopped_early,
)
from promptgate.report.model import MetricResult, Override, PromptReport, Report

MARKER = "<!-- promptgate:report -->"
#: The order prompts are listed and shown in: what needs a reviewer first.
VERDICT_ORDER = {"fail": 0, "error": 1, "new": 2, "pass": 3, "removed": 4}


def display_order(prompts: Sequence[PromptReport]) -> list[PromptReport]:
    return sorted(prompts, key=lambda p: (VERDICT_ORDER[p.verdict], display_path(p)))


def header(
    report: Report,
    heading: str,
    ci_label: str,
    max_rows: int | None = None,
    *,
    alerts: bool = True,
) -> str:
    """`alerts`: GitHub's alert blocks (`> [!WARNING]`), which PR comments render; elsewhere
    (the job summary) a bold label in a plain quote says the same."""
    lines = [
        MARKER,
        f"## {VERDICT_ICONS[report.verdict]} {heading}: {VERDICT_WORDS[report.verdict]}"
        + (" · regression accepted" if report.override and report.override.accepted else "")
        + (f" · partial ({partial_words(report.partial)})" if report.partial else ""),
        "",
        (
            f"{escape.code_span(short_sha(report.base.sha))}.."
            f"{escape.code_span(short_sha(report.head.sha))} "
            if report.head.sha
            else ""
        )
        + f"(base {escape.inline(report.base.ref, 80)} → head {escape.inline(report.head.ref, 80)})"
        + ("" if stopped_early(report) else f" · {_prompt_counts(report.prompts)}"),
    ]
    for note in report.notes:
        lines += ["", f"**Note:** {escape.inline(note, 500)}"]
    if report.override:
        lines += ["", *_override_note(report.override, alerts)]
    if report.config_changed:
        source = report.gate.config_source if report.gate else None
        when = (
            " The gate ran with the base branch's config; the change applies once merged."
            if source == "base"
            else ""
        )
        lines += ["", *_alert("WARNING", f"This PR changes the gate config.{when}", alerts)]
        if report.config_changes:
            lines += ["", _config_changes_table(report)]
    if report.errors:
        lines += ["", "**Errors**", ""]
        lines += [f"- {escape.inline(error, 500)}" for error in report.errors]
    if report.warnings:
        lines += ["", "**Warnings**", ""]
        lines += [f"- {escape.inline(warning, 500)}" for warning in report.warnings]
    if report.prompts:
        lines += ["", summary_table(report.prompts, ci_label, max_rows)]
    return "\n".join(lines)


def summary_table(
    prompts: Sequence[PromptReport], ci_label: str, max_rows: int | None = None
) -> str:
    """One row per prompt, failures first: its verdict and the metric closest to failing it
    (or what failed it), with that metric's threshold. Past `max_rows`, a count of the rest."""
    rows = [
        f"| prompt | verdict | worst: Δ [{ci_label}] | threshold |",
        "|---|---|---|--:|",
    ]
    ordered = display_order(prompts)
    listed = ordered if max_rows is None else ordered[:max_rows]
    for prompt in listed:
        worst, threshold = _worst(prompt)
        rows.append(
            f"| {escape.inline(display_path(prompt), 120)} "
            f"| {PROMPT_ICONS[prompt.verdict]} {prompt.verdict} | {worst} | {threshold} |"
        )
    if len(listed) < len(ordered):
        rest = Counter(p.verdict for p in ordered[len(listed) :])
        counts = ", ".join(f"{n} {v}" for v, n in sorted(rest.items()))
        rows.append(f"| …and {len(ordered) - len(listed)} more ({counts}) | | | |")
    return "\n".join(rows)


def _worst(prompt: PromptReport) -> tuple[str, str]:
    """The summary's two last cells for a prompt."""
    if prompt.verdict == "error":
        return escape.inline(prompt.error or "could not evaluate", 100), "—"
    failing = {name: r for name, r in prompt.metrics.items() if r.status == "fail"}
    compared = {name: r for name, r in prompt.metrics.items() if r.delta is not None}
    if not failing and prompt.verdict == "fail" and prompt.reason:
        return escape.inline(prompt.reason, 100), "—"  # the eval-set rule or a usage gate
    if not failing and compared and all(r.identical for r in compared.values()):
        return "identical outputs", "—"
    candidates = failing or compared
    if not candidates:
        return "—", "—"  # a new prompt that passed its floors, or a removed one
    name, result = min(candidates.items(), key=lambda item: _closeness(item[1]))
    if result.delta is None:  # a new prompt failing a floor
        return (
            f"{escape.inline(name, 40)} {format_score(name, result.candidate)} "
            f"below min {format_score(name, result.min)}",
            "—",
        )
    return (
        f"{escape.inline(name, 40)} {format_score(name, result.delta, signed=True)} "
        f"{format_interval(name, result.ci_low, result.ci_high)}",
        format_threshold(name, result),
    )


def _closeness(result: MetricResult) -> float:
    """How far towards its threshold the metric moved: -1 is a drop of exactly max_drop."""
    if result.delta is None:
        return float("-inf")
    return result.delta / result.threshold if result.threshold > 0 else result.delta


def _prompt_counts(prompts: Sequence[PromptReport]) -> str:
    if not prompts:
        return "no prompt file changed"
    counts = Counter(prompt.verdict for prompt in prompts)
    noun = "prompt" if len(prompts) == 1 else "prompts"
    parts = [f"{n} {v}" for v, n in sorted(counts.items(), key=lambda vn: VERDICT_ORDER[vn[0]])]
    return f"{len(prompts)} {noun}: " + ", ".join(parts)


def _alert(kind: str, text: str, alerts: bool) -> list[str]:
    if alerts:
        return [f"> [!{kind}]", f"> {text}"]
    return [f"> **{kind.capitalize()}:** {text}"]


def _override_note(override: Override, alerts: bool) -> list[str]:
    label = escape.inline(override.label, 60)
    if override.accepted:
        when = f" at {escape.inline(override.applied_at, 40)}" if override.applied_at else ""
        return _alert(
            "CAUTION",
            f"**Regression accepted** by {escape.inline('@' + (override.actor or '?'), 60)} "
            f"({escape.inline(override.permission or '?', 20)} access) with the label "
            f"“{label}”{when}. The verdict stays *fail* and is recorded; the check passes. "
            "Remove the label to gate again.",
            alerts,
        )
    return _alert(
        "WARNING",
        f"The label “{label}” was not honoured: {escape.inline(override.reason or '', 400)}",
        alerts,
    )


def _config_changes_table(report: Report) -> str:
    """The PR's config against the governing one; the PR controls the head values: escaped."""
    source = report.gate.config_source if report.gate else None
    governing = "base (governs this run)" if source == "base" else "base"
    rows = [f"| setting | {governing} | this PR | |", "|---|---|---|---|"]
    for change in report.config_changes:
        rows.append(
            "| "
            + " | ".join(
                [
                    escape.inline(change.setting, 80),
                    _setting_value(change.base),
                    _setting_value(change.head),
                    "⚠️ loosens the gate" if change.loosens else "",
                ]
            )
            + " |"
        )
    return "\n".join(rows)


def _setting_value(value: object) -> str:
    if value is None:
        return "—"
    text = json.dumps(value) if not isinstance(value, str) else value
    return escape.inline(text, 120)
