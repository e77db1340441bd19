"""One prompt's section of the comment: what changed, why it fails, its metric table, its cost,
and the evidence (comment_evidence.py)."""

from __future__ import annotations

from promptgate.report import escape
from promptgate.report.comment_evidence import regressions
from promptgate.report.format import (
    PROMPT_ICONS,
    dataset_change_counts,
    display_path,
    format_interval,
    format_score,
    format_threshold,
    refusal_summary,
    sampling_summary,
    status_words,
    usage_summary,
)
from promptgate.report.model import PromptReport

STATUS_ICONS = {"pass": "✅", "fail": "❌"}
#: Verdicts whose sections stay in view; the others are folded (comment.py).
SHOWN_VERDICTS = ("fail", "error")


def prompt_section(
    prompt: PromptReport, ci_label: str, shown_examples: int, output_chars: int
) -> str:
    icon = f"{PROMPT_ICONS[prompt.verdict]} " if prompt.verdict in SHOWN_VERDICTS else ""
    examples = f"{prompt.examples} example" + ("" if prompt.examples == 1 else "s")
    facts = [f"*{prompt.change}*", f"**{prompt.verdict}**", examples]
    if prompt.model:
        facts.append(f"model {escape.inline(prompt.model, 80)}")
    lines = [f"### {icon}{escape.inline(display_path(prompt), 300)}", "", " · ".join(facts)]
    if prompt.dataset_changed:
        lines += ["", _dataset_note(prompt)]
    if prompt.reason:
        lines += ["", f"> **Fails:** {escape.inline(prompt.reason, 500)}"]
    if prompt.error:
        lines += ["", f"> ⚠️ {escape.inline(prompt.error, 1000)}"]
    lines += [
        line
        for note in prompt.notes[:3]
        for line in ("", f"> **Note:** {escape.inline(note, 500)}")
    ]
    sampling = sampling_summary(prompt)
    if sampling:
        lines += ["", f"Sampling: {escape.inline(sampling, 300)}"]
    if prompt.failed_examples:
        ids = ", ".join(escape.inline(i, 60) for i in prompt.failed_examples[:10])
        more = len(prompt.failed_examples) - 10
        lines += [
            "",
            f"> ⚠️ {len(prompt.failed_examples)} example(s) left out of both sides, their "
            f"generation given up after retries (allowed by `gate.max_failed_share`): {ids}"
            + (f" and {more} more" if more > 0 else ""),
        ]
    refusals = refusal_summary(prompt)  # above the table: it often explains the scores
    if refusals:
        lines += ["", f"> ⚠️ {escape.inline(refusals, 300)}"]
    if prompt.metrics and all(result.identical for result in prompt.metrics.values()):
        lines += ["", "Every example scored the same on both versions: Δ 0 on every metric."]
    elif prompt.metrics:
        lines += ["", _metric_table(prompt, ci_label)]
        reasons = [
            f"- **{escape.inline(name, 40)}**: {escape.inline(result.reason, 300)}"
            for name, result in prompt.metrics.items()
            if result.status == "fail" and result.reason
        ]
        if reasons:
            lines += ["", *reasons]
    usage = usage_summary(prompt)
    if usage:
        lines += ["", f"Cost: {escape.inline(usage, 300)}"]
    evidence = regressions(prompt, shown_examples, output_chars)
    if evidence:
        lines += ["", evidence]
    return "\n".join(lines)


def _metric_table(prompt: PromptReport, ci_label: str) -> str:
    rows = [
        f"| metric | baseline | candidate | Δ | {ci_label} | threshold | status |",
        "|---|--:|--:|--:|:-:|--:|:-:|",
    ]
    for name, result in prompt.metrics.items():
        cells = [
            escape.inline(name, 40),
            format_score(name, result.baseline),
            format_score(name, result.candidate),
            format_score(name, result.delta, signed=True),
            format_interval(name, result.ci_low, result.ci_high),
            format_threshold(name, result),
            f"{STATUS_ICONS[result.status]} {status_words(result)}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _dataset_note(prompt: PromptReport) -> str:
    dataset = f" ({escape.inline(prompt.dataset, 200)})" if prompt.dataset else ""
    counts = (
        f": {dataset_change_counts(prompt.dataset_diff)} (examples matched by id)"
        if prompt.dataset_diff
        else ""
    )
    ran = {
        "unchanged": " The prompt itself is unchanged: both sides ran it on the new eval set, "
        "so its deltas show run-to-run noise.",
        "added": "",
    }.get(prompt.change, " Both versions ran on the new one.")
    return f"**The eval set{dataset} changed in this PR**{counts}.{ran}"
