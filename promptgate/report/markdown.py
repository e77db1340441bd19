"""The Markdown report: the sticky PR comment and the job summary.

Every string that a PR author or a model controls goes through `escape` before it reaches the
page. The comment must stay under GitHub's 65,536-character limit, so detail is given up in a
fixed order (see `render_markdown`) and the comment says what it left out.
"""

from __future__ import annotations

import json
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from promptgate.report import escape
from promptgate.report.format import (
    PROMPT_ICONS,
    VERDICT_ICONS,
    VERDICT_WORDS,
    calls_summary,
    confidence_label,
    dataset_change_counts,
    display_path,
    format_interval,
    format_score,
    format_threshold,
    nothing_judged_line,
    refusal_summary,
    sampling_summary,
    short_sha,
    status_words,
    stopped_early,
    usage_summary,
)
from promptgate.report.model import ExampleChange, Override, PromptReport, Report
from promptgate.sequential import gate_rule

MARKER = "<!-- promptgate:report -->"
STATUS_ICONS = {"pass": "✅", "fail": "❌"}

# Per-output character limits for the side-by-side regressions: generous first, then short.
OUTPUT_CHARS = (1500, 400)


# --- pieces --------------------------------------------------------------------------------


def _code(text: str) -> str:
    """A code span for trusted text, fenced so that backticks inside cannot end it."""
    text = " ".join(text.split())
    longest_run, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest_run = max(longest_run, run)
    fence = "`" * (longest_run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _header(report: Report, heading: str) -> str:
    lines = [
        MARKER,
        f"## {VERDICT_ICONS[report.verdict]} {heading}: {VERDICT_WORDS[report.verdict]}"
        + (" · regression accepted" if report.override and report.override.accepted else ""),
        "",
        (
            f"{_code(short_sha(report.base.sha))}..{_code(short_sha(report.head.sha))} "
            if report.head.sha
            else ""
        )
        + f"(base {escape.inline(report.base.ref, 80)} → head {escape.inline(report.head.ref, 80)})"
        + ("" if stopped_early(report) else f" · {_prompt_counts(report.prompts)}"),
    ]
    if report.override:
        lines += ["", *_override_note(report.override)]
    if report.config_changed:
        source = report.gate.config_source if report.gate else None
        when = (
            " The gate ran with the base branch's config; the change applies once merged."
            if source == "base"
            else ""
        )
        lines += ["", "> [!WARNING]", f"> This PR changes the gate config.{when}"]
        if report.config_changes:
            lines += ["", _config_changes_table(report)]
    if report.errors:
        lines += ["", "**Errors**", ""]
        lines += [f"- {escape.inline(error, 500)}" for error in report.errors]
    if report.warnings:
        lines += ["", "**Warnings**", ""]
        lines += [f"- {escape.inline(warning, 500)}" for warning in report.warnings]
    return "\n".join(lines)


def _override_note(override: Override) -> list[str]:
    label = escape.inline(override.label, 60)
    if override.accepted:
        when = f" at {escape.inline(override.applied_at, 40)}" if override.applied_at else ""
        return [
            "> [!CAUTION]",
            f"> **Regression accepted** by {escape.inline('@' + (override.actor or '?'), 60)} "
            f"({escape.inline(override.permission or '?', 20)} access) with the label "
            f"“{label}”{when}. The verdict stays *fail* and is recorded; the check passes. "
            "Remove the label to gate again.",
        ]
    return [
        "> [!WARNING]",
        f"> The label “{label}” was not honoured: {escape.inline(override.reason or '', 400)}",
    ]


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


def _prompt_counts(prompts: Sequence[PromptReport]) -> str:
    if not prompts:
        return "no prompt file changed"
    counts = Counter(prompt.verdict for prompt in prompts)
    noun = "prompt" if len(prompts) == 1 else "prompts"
    parts = [f"{PROMPT_ICONS[v]} {n} {v}" for v, n in sorted(counts.items())]
    return f"{len(prompts)} {noun}: " + " · ".join(parts)


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


def _example_deltas(example: ExampleChange) -> str:
    deltas = example.metric_deltas()
    return " · ".join(
        f"{escape.inline(name, 40)} {format_score(name, value, signed=True)}"
        for name, value in deltas.items()
    )


def _output_cell(output: str | None, refusal: str | None, max_chars: int) -> str:
    if output is None:
        return "<td><em>no output</em></td>"
    kept = f"<pre>{escape.block(output, max_chars)}</pre>" if output else ""
    if refusal is None:
        return f"<td>{kept}</td>"
    return f"<td><em>refused ({escape.inline(refusal, 100)})</em>{kept}</td>"


def _regressions(prompt: PromptReport, shown: int, output_chars: int) -> str:
    examples = prompt.top_regressions[:shown]
    if not examples:
        return ""
    total = len(prompt.top_regressions)
    count = f"{total}" if shown >= total else f"showing {len(examples)} of {total}"
    parts = [f"<details><summary>Top regressions ({count})</summary>", ""]
    for example in examples:
        deltas = _example_deltas(example)
        refused = prompt.refused_examples.get(example.id, {})
        title = escape.inline(example.id, 80) + (f" — {deltas}" if deltas else "")
        parts += [
            "<table>",
            f'<tr><th colspan="2">{title}</th></tr>',
            "<tr><th>baseline</th><th>candidate</th></tr>",
            "<tr>"
            + _output_cell(example.baseline_output, refused.get("baseline"), output_chars)
            + _output_cell(example.candidate_output, refused.get("candidate"), output_chars)
            + "</tr>",
            "</table>",
            "",
        ]
    parts.append("</details>")
    return "\n".join(parts)


def _prompt_section(
    prompt: PromptReport, ci_label: str, shown_examples: int, output_chars: int
) -> str:
    icon = PROMPT_ICONS[prompt.verdict]
    examples = f"{prompt.examples} example" + ("" if prompt.examples == 1 else "s")
    facts = [f"*{prompt.change}*", f"**{prompt.verdict}**", examples]
    if prompt.model:
        facts.append(f"model {escape.inline(prompt.model, 80)}")
    lines = [f"### {icon} {escape.inline(display_path(prompt), 300)}", "", " · ".join(facts)]
    if prompt.dataset_changed:
        lines += ["", _dataset_note(prompt)]
    if prompt.reason:
        lines += ["", f"> ❌ {escape.inline(prompt.reason, 500)}"]
    if prompt.error:
        lines += ["", f"> ⚠️ {escape.inline(prompt.error, 1000)}"]
    lines += [line for note in prompt.notes[:3] for line in ("", f"> ℹ️ {escape.inline(note, 500)}")]
    sampling = sampling_summary(prompt)
    if sampling:
        lines += ["", f"🎲 {escape.inline(sampling, 300)}"]
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
    if prompt.metrics:
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
        lines += ["", f"💰 {escape.inline(usage, 300)}"]
    regressions = _regressions(prompt, shown_examples, output_chars)
    if regressions:
        lines += ["", regressions]
    return "\n".join(lines)


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
    return f"📝 **The eval set{dataset} changed in this PR**{counts}.{ran}"


def _collapsed_line(prompt: PromptReport) -> str:
    failing = [
        f"{escape.inline(name, 40)} {format_score(name, result.delta, signed=True)}"
        for name, result in prompt.metrics.items()
        if result.status == "fail"
    ]
    tail = f" — failing: {', '.join(failing)}" if failing else ""
    return (
        f"- {PROMPT_ICONS[prompt.verdict]} {escape.inline(display_path(prompt), 200)} "
        f"({prompt.change}{', eval set changed' if prompt.dataset_changed else ''}): "
        f"{prompt.verdict}{tail}"
    )


def _run_and_calls(report: Report) -> str:
    lines = []
    info = report.mlflow
    if info.run_id:
        run = _code(info.run_id)
        if info.url:
            run = f"[run {run}]({urllib.parse.quote(info.url, safe=':/#?&=%')})"
        else:
            run = f"run {run}"
        where = f" in experiment {_code(info.experiment_id)}" if info.experiment_id else ""
        store = (
            f" at {escape.inline(info.tracking_uri, 200)}"
            if info.tracking_uri and not info.url
            else ""
        )
        lines.append(f"📈 MLflow: {run}{where}{store}")
    if info.warning:
        lines.append(f"⚠️ MLflow: {escape.inline(info.warning, 500)}")
    lines.append(f"🔁 Calls: {calls_summary(report.calls, ' · ')}")
    return "\n\n".join(lines)


def _footer(report: Report) -> str:
    gate = report.gate
    rule = gate_rule(gate is not None and gate.adaptive)
    lines = ["---", "<details><summary>How this gate decides</summary>", "", rule]
    if gate is not None:
        samples = (
            f"adaptive sampling, {gate.samples} to {gate.max_samples} samples per example and "
            f"version ({gate.rounds} round{'s' if gate.rounds != 1 else ''})"
            if gate.adaptive
            else f"{gate.samples} sample(s) per example and version"
        )
        facts = [
            f"- PR-level error rate {gate.error_rate * 100:g}%, Holm over {gate.tests} "
            "one-sided metric test(s)",
            f"- {gate.confidence * 100:g}% paired bootstrap interval shown, "
            f"{gate.bootstrap_resamples} resamples, seed {gate.seed}, {samples}",
        ]
        if gate.config_path or gate.config_hash:
            config = escape.inline(gate.config_path or "config", 200)
            source = f" from {gate.config_source}" if gate.config_source else ""
            digest = f", hash {_code(gate.config_hash)}" if gate.config_hash else ""
            facts.append(f"- config {config}{source}{digest}")
        if gate.provider or gate.model:
            facts.append(
                f"- provider {escape.inline(gate.provider or '–', 80)}, "
                f"model {escape.inline(gate.model or '–', 120)}"
            )
        facts += [
            f"- {escape.inline(name, 40)}: {_code(signature)}"
            for name, signature in gate.signatures.items()
        ]
        lines += ["", *facts]
    lines += ["", "</details>"]
    return "\n".join(lines)


# --- fitting into the limit ----------------------------------------------------------------


@dataclass
class _Trim:
    output_chars: int = OUTPUT_CHARS[0]
    examples_dropped: int = 0
    collapsed: int = 0
    omitted: int = 0

    def note(self, has_mlflow_run: bool) -> str:
        done = []
        if self.output_chars < OUTPUT_CHARS[0]:
            done.append(f"outputs cut to {self.output_chars} characters")
        if self.examples_dropped:
            done.append(f"{self.examples_dropped} example regression(s) left out")
        if self.collapsed:
            done.append(f"{self.collapsed} prompt section(s) collapsed to one line")
        if self.omitted:
            done.append(f"{self.omitted} prompt(s) not listed")
        if not done:
            return ""
        full = (
            "The JSON report and the MLflow run have" if has_mlflow_run else "The JSON report has"
        )
        return f"✂️ **Trimmed to fit GitHub's size limit:** {'; '.join(done)}. {full} everything."


def _importance(prompt: PromptReport) -> int:
    """Lower is collapsed first: failures stay detailed longest."""
    return {"fail": 2, "error": 1}.get(prompt.verdict, 0)


class _Document:
    def __init__(self, report: Report, heading: str) -> None:
        self.report = report
        self.top = _header(report, heading)
        self.bottom = _run_and_calls(report) + "\n\n" + _footer(report)
        self.ci_label = confidence_label(report)
        self.has_run = report.mlflow.run_id is not None

    def sections(self, shown_examples: int, output_chars: int) -> list[str]:
        return [
            _prompt_section(p, self.ci_label, shown_examples, output_chars)
            for p in self.report.prompts
        ]

    def assemble(self, sections: Sequence[str], collapsed: Sequence[str], trim: _Trim) -> str:
        blocks = [self.top]
        note = trim.note(self.has_run)
        if note:
            blocks.append(note)
        if not self.report.prompts:
            blocks.append(nothing_judged_line(self.report))
        blocks += sections
        if collapsed:
            blocks.append("#### Prompts shown in one line\n\n" + "\n".join(collapsed))
        if trim.omitted:
            blocks.append(f"…and {trim.omitted} more prompt(s), not listed.")
        blocks.append(self.bottom)
        return "\n\n".join(blocks) + "\n"


@dataclass(frozen=True)
class _Budget:
    """The room the text has: characters (a GitHub comment: GitHub counts characters) or, when
    `in_bytes`, UTF-8 bytes (a job summary: the runner counts the file's bytes)."""

    limit: int
    in_bytes: bool = False

    def size(self, text: str) -> int:
        return len(text.encode("utf-8")) if self.in_bytes else len(text)

    def fits(self, text: str) -> bool:
        return self.size(text) <= self.limit

    def cut(self, text: str) -> str:
        """The longest start of `text` that fits (never half a character)."""
        if not self.in_bytes:
            return text[: max(self.limit, 0)]
        return text.encode("utf-8")[: max(self.limit, 0)].decode("utf-8", "ignore")


def render_markdown(
    report: Report,
    *,
    max_chars: int = 65_000,
    max_bytes: int | None = None,
    heading: str = "promptgate",
) -> str:
    """The report as GitHub Markdown, at most `max_chars` characters, or, when `max_bytes` is
    given, at most that many bytes of UTF-8 instead.

    When the full report is too long, detail goes in this order: example outputs are shortened,
    then example regressions dropped (the same number per prompt, from the bottom of each
    list), then whole prompt sections collapse to one line (passing prompts first, failures
    last), then collapsed lines are left out. The comment says what was trimmed.
    """
    budget = _Budget(max_chars) if max_bytes is None else _Budget(max_bytes, in_bytes=True)
    doc = _Document(report, heading)
    prompts = report.prompts
    total_examples = sum(len(p.top_regressions) for p in prompts)
    most_examples = max((len(p.top_regressions) for p in prompts), default=0)

    def shown_total(cap: int) -> int:
        return sum(min(cap, len(p.top_regressions)) for p in prompts)

    def attempt(cap: int, chars: int) -> str:
        trim = _Trim(output_chars=chars, examples_dropped=total_examples - shown_total(cap))
        return doc.assemble(doc.sections(cap, chars), [], trim)

    for chars in OUTPUT_CHARS:
        text = attempt(most_examples, chars)
        if budget.fits(text):
            return text

    # Fewer examples per prompt: the length grows with the cap, so bisect the largest that fits.
    low, high = 0, most_examples - 1
    best: str | None = None
    while low <= high:
        cap = (low + high) // 2
        text = attempt(cap, OUTPUT_CHARS[-1])
        if budget.fits(text):
            best, low = text, cap + 1
        else:
            high = cap - 1
    if best is not None:
        return best
    return _collapse(doc, budget, total_examples)


def _collapse(doc: _Document, budget: _Budget, total_examples: int) -> str:
    """Collapse prompt sections to one line, then leave lines out, least important first."""
    prompts = doc.report.prompts
    full = doc.sections(0, OUTPUT_CHARS[-1])
    lines = [_collapsed_line(p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (_importance(prompts[i]), -i))
    steps = [("collapse", i) for i in order] + [("omit", i) for i in order]
    trim = _Trim(output_chars=OUTPUT_CHARS[-1], examples_dropped=total_examples)
    collapsed: set[int] = set()
    omitted: set[int] = set()

    def render() -> str:
        sections = [full[i] for i in range(len(prompts)) if i not in collapsed]
        shown = [lines[i] for i in range(len(prompts)) if i in collapsed and i not in omitted]
        return doc.assemble(sections, shown, trim)

    def apply(step: tuple[str, int]) -> int:
        """Take one step; return roughly how much room it saved."""
        kind, i = step
        if kind == "collapse":
            collapsed.add(i)
            trim.collapsed += 1
            return budget.size(full[i]) - budget.size(lines[i]) + 1
        omitted.add(i)
        trim.collapsed -= 1
        trim.omitted += 1
        return budget.size(lines[i]) + 1

    # Estimate savings first so that many prompts do not mean many renders; the estimate
    # ignores the trim note and list heading, so finish with exact renders.
    taken = 0
    length = budget.size(render())
    while taken < len(steps) and length > budget.limit:
        length -= apply(steps[taken])
        taken += 1
    text = render()
    while taken < len(steps) and not budget.fits(text):
        apply(steps[taken])
        taken += 1
        text = render()
    # Only a limit smaller than the header and footer gets here.
    return budget.cut(text)
