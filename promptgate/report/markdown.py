"""The Markdown report: the sticky PR comment and the job summary.

From the top: the verdict and a table of every prompt, failures first (comment_header.py); the
sections of the prompts that failed or could not be evaluated; the other prompts' sections
folded in one `<details>`; where the MLflow run is and what the calls did, and how the gate
decides (comment_footer.py).

Every string that a PR author or a model controls goes through `escape` before it reaches the
page. The comment must stay under GitHub's 65,536-character limit, so detail is given up in a
fixed order (see `render_markdown`) and the comment says what it left out.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from promptgate.report.comment_footer import footer, run_and_calls
from promptgate.report.comment_header import MARKER, VERDICT_ORDER, display_order, header
from promptgate.report.comment_prompt import SHOWN_VERDICTS, prompt_section
from promptgate.report.format import confidence_label, nothing_judged_line
from promptgate.report.model import PromptReport, Report

__all__ = ["MARKER", "render_markdown"]

# Per-output character limits for the worst examples: generous first, then short.
OUTPUT_CHARS = (1500, 400)
FOLDED_WORDS = {"new": "new", "pass": "passing", "removed": "removed"}


@dataclass
class _Trim:
    output_chars: int = OUTPUT_CHARS[0]
    examples_dropped: int = 0
    sections_dropped: int = 0
    rows_dropped: int = 0

    def note(self, has_mlflow_run: bool) -> str:
        done = []
        if self.output_chars < OUTPUT_CHARS[0]:
            done.append(f"outputs cut to {self.output_chars} characters")
        if self.examples_dropped:
            done.append(f"{self.examples_dropped} worst example(s) left out")
        if self.sections_dropped:
            done.append(
                f"{self.sections_dropped} prompt section(s) left out (their rows in the table stay)"
            )
        if self.rows_dropped:
            done.append(f"{self.rows_dropped} table row(s) left out")
        if not done:
            return ""
        full = (
            "The JSON report and the MLflow run have" if has_mlflow_run else "The JSON report has"
        )
        return f"✂️ **Trimmed to fit GitHub's size limit:** {'; '.join(done)}. {full} everything."


class _Document:
    def __init__(self, report: Report, heading: str, alerts: bool) -> None:
        self.report = report
        self.heading = heading
        self.alerts = alerts
        self.prompts = display_order(report.prompts)
        self.bottom = run_and_calls(report) + "\n\n" + footer(report)
        self.ci_label = confidence_label(report)
        self.has_run = report.mlflow.run_id is not None

    def sections(self, shown_examples: int, output_chars: int) -> list[str]:
        """Every prompt's section, in display order."""
        return [
            prompt_section(p, self.ci_label, shown_examples, output_chars) for p in self.prompts
        ]

    def assemble(
        self, sections: Sequence[str | None], trim: _Trim, max_rows: int | None = None
    ) -> str:
        """The comment with `sections` (display order; None: left out) and at most `max_rows`
        rows of the summary table."""
        blocks = [header(self.report, self.heading, self.ci_label, max_rows, alerts=self.alerts)]
        note = trim.note(self.has_run)
        if note:
            blocks.append(note)
        if not self.prompts:
            blocks.append(nothing_judged_line(self.report))
        shown = [s for p, s in zip(self.prompts, sections, strict=True) if _shown(p) and s]
        folded = [s for p, s in zip(self.prompts, sections, strict=True) if not _shown(p) and s]
        blocks += shown
        if folded:
            title = _folded_title([p for p in self.prompts if not _shown(p)])
            blocks.append(f"<details><summary>{title}</summary>\n\n" + "\n\n".join(folded))
            blocks.append("</details>")
        blocks.append(self.bottom)
        return "\n\n".join(blocks) + "\n"


def _shown(prompt: PromptReport) -> bool:
    return prompt.verdict in SHOWN_VERDICTS


def _folded_title(prompts: Sequence[PromptReport]) -> str:
    counts = Counter(p.verdict for p in prompts)
    words = [
        f"{n} {FOLDED_WORDS[v]}"
        for v, n in sorted(counts.items(), key=lambda vn: VERDICT_ORDER[vn[0]])
    ]
    noun = "prompt" if len(prompts) == 1 else "prompts"
    return f"{', '.join(words)} {noun}"


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
    alerts: bool = True,
) -> str:
    """The report as GitHub Markdown, at most `max_chars` characters, or, when `max_bytes` is
    given, at most that many bytes of UTF-8 instead. `alerts`: GitHub's alert blocks, for a PR
    comment; without, a bold label (the job summary, where GitHub does not promise them).

    When the full report is too long, detail goes in this order: example outputs are shortened,
    then worst examples dropped (the same number per prompt, from the bottom of each list),
    then whole prompt sections (folded ones first, failures last; each keeps its row in the
    summary table), then rows of the summary table from its bottom. The comment says what was
    trimmed.
    """
    budget = _Budget(max_chars) if max_bytes is None else _Budget(max_bytes, in_bytes=True)
    doc = _Document(report, heading, alerts)
    prompts = doc.prompts
    total_examples = sum(len(p.top_regressions) for p in prompts)
    most_examples = max((len(p.top_regressions) for p in prompts), default=0)

    def shown_total(cap: int) -> int:
        return sum(min(cap, len(p.top_regressions)) for p in prompts)

    def attempt(cap: int, chars: int) -> str:
        trim = _Trim(output_chars=chars, examples_dropped=total_examples - shown_total(cap))
        return doc.assemble(doc.sections(cap, chars), trim)

    for chars in OUTPUT_CHARS:
        text = attempt(most_examples, chars)
        if budget.fits(text):
            return text

    # Fewer examples per prompt.
    best = _largest_that_fits(most_examples - 1, lambda cap: attempt(cap, OUTPUT_CHARS[-1]), budget)
    if best is not None:
        return best
    return _drop_sections(doc, budget, total_examples)


def _largest_that_fits(high: int, render: Callable[[int], str], budget: _Budget) -> str | None:
    """`render(n)` for the largest n in 0..high whose text fits, or None: the text grows with
    n, so bisect."""
    low, best = 0, None
    while low <= high:
        middle = (low + high) // 2
        text = render(middle)
        if budget.fits(text):
            best, low = text, middle + 1
        else:
            high = middle - 1
    return best


def _drop_sections(doc: _Document, budget: _Budget, total_examples: int) -> str:
    """Leave sections out, least important first, then summary rows from the bottom."""
    prompts = doc.prompts
    full: list[str | None] = list(doc.sections(0, OUTPUT_CHARS[-1]))
    # Folded sections from the bottom, then the shown ones from the bottom: failures last.
    order = sorted(range(len(prompts)), key=lambda i: (_shown(prompts[i]), -i))
    trim = _Trim(output_chars=OUTPUT_CHARS[-1], examples_dropped=total_examples)
    # Estimate savings first so that many prompts do not mean many renders; finish exactly.
    length = budget.size(doc.assemble(full, trim))
    taken = 0
    while taken < len(order) and length > budget.limit:
        section = full[order[taken]]
        length -= budget.size(section or "") + 2
        full[order[taken]] = None
        trim.sections_dropped += 1
        taken += 1
    text = doc.assemble(full, trim)
    while taken < len(order) and not budget.fits(text):
        full[order[taken]] = None
        trim.sections_dropped += 1
        taken += 1
        text = doc.assemble(full, trim)
    if budget.fits(text):
        return text

    # Rows of the summary table: as many as fit.
    def with_rows(rows: int) -> str:
        shown = dataclasses.replace(trim, rows_dropped=len(prompts) - rows)
        return doc.assemble(full, shown, max_rows=rows)

    best = _largest_that_fits(len(prompts), with_rows, budget)
    if best is not None:
        return best
    # Only a limit smaller than the header and footer gets here.
    trim.rows_dropped = len(prompts)
    return budget.cut(doc.assemble(full, trim, max_rows=0))
