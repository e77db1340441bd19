"""The report as a short rich summary for the terminal and the CI log.

Untrusted text (paths, refs, example ids, errors) is passed as `rich.text.Text`, which rich
never parses for markup, so `[bold]` in a branch name prints as typed; its control characters
are shown escaped first (`escape.terminal`), so a newline or ESC in an id cannot start a line or
drive the terminal.
"""

from __future__ import annotations

from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from promptgate.report.escape import terminal_model
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
    partial_words,
    refusal_summary,
    sampling_summary,
    short_sha,
    status_words,
    usage_summary,
)
from promptgate.report.model import PromptReport, Report

VERDICT_STYLES = {"pass": "bold green", "fail": "bold red", "error": "bold yellow"}
PROMPT_STYLES = {"pass": "green", "fail": "red", "new": "cyan", "removed": "dim", "error": "yellow"}
STATUS_STYLES = {"pass": "green", "fail": "bold red"}
WORST_EXAMPLES = 3


def print_summary(report: Report, console: Console, *, mlflow: bool = True) -> None:
    """Print the verdict, one table of metric deltas per prompt, the calls and (unless the
    caller prints it after logging, `print_mlflow`) the MLflow run."""
    report = terminal_model(report)  # every string shown with its control characters escaped
    console.print(
        Text.assemble(
            (
                f"{VERDICT_ICONS[report.verdict]} promptgate: {VERDICT_WORDS[report.verdict]}"
                + (f" (partial: {partial_words(report.partial)})" if report.partial else ""),
                VERDICT_STYLES[report.verdict],
            ),
            f"  {short_sha(report.base.sha)}..{short_sha(report.head.sha)} (base ",
            report.base.ref,
            " → head ",
            report.head.ref,
            ")",
        )
    )
    override = report.override
    if override and override.accepted:
        console.print(
            Text(
                f"Regression accepted by @{override.actor} ({override.permission} access) with "
                f"the label '{override.label}': the verdict stays fail, the step passes.",
                style="bold yellow",
            )
        )
    elif override:
        console.print(
            Text(
                f"The label '{override.label}' was not honoured: {override.reason}", style="yellow"
            )
        )
    for note in report.notes:
        console.print(Text(f"note: {note}", style="cyan"))
    if report.config_changed:
        console.print(Text("⚠ This PR changes the gate config.", style="yellow"))
    for error in report.errors:
        console.print(Text(f"error: {error}", style="red"))
    for warning in report.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    if not report.prompts:
        console.print(nothing_judged_line(report))
    ci_label = confidence_label(report)
    for prompt in report.prompts:
        _print_prompt(prompt, ci_label, console)
    console.print(f"Calls: {calls_summary(report.calls)}", markup=False)
    if mlflow:
        print_mlflow(report, console)


def _print_prompt(prompt: PromptReport, ci_label: str, console: Console) -> None:
    title = Text.assemble(
        f"{PROMPT_ICONS[prompt.verdict]} ",
        (display_path(prompt), "bold"),
        f" ({prompt.change}, {prompt.examples} examples): ",
        (prompt.verdict, PROMPT_STYLES[prompt.verdict]),
    )
    console.print()
    console.print(title)
    if prompt.dataset_changed:
        counts = f": {dataset_change_counts(prompt.dataset_diff)}" if prompt.dataset_diff else ""
        console.print(Text(f"  the eval set changed in this PR{counts}", style="yellow"))
    if prompt.reason:  # why it fails though no metric did: the eval-set rule, the usage gates
        console.print(Text(f"  {prompt.reason}", style="red"))
    if prompt.error:
        console.print(Text(f"  {prompt.error}", style="yellow"))
    sampling = sampling_summary(prompt)
    if sampling:
        console.print(Text(f"  {sampling}", style="dim"))
    if prompt.failed_examples:
        console.print(
            Text(
                f"  {len(prompt.failed_examples)} example(s) left out, generation given up: "
                + ", ".join(prompt.failed_examples[:10]),
                style="yellow",
            )
        )
    refusals = refusal_summary(prompt)
    if refusals:
        console.print(Text(f"  {refusals}", style="yellow"))
    if prompt.metrics:
        table = Table(box=None, padding=(0, 1), show_edge=False)
        for column in ("  metric", "baseline", "candidate", "Δ", ci_label, "threshold", "status"):
            words = column in ("  metric", "status")
            justify: Literal["left", "right"] = "left" if words else "right"
            # Narrow terminals wrap the words, never cut a number.
            table.add_column(column, justify=justify, no_wrap=not words)
        for name, result in prompt.metrics.items():
            table.add_row(
                Text(f"  {name}"),
                format_score(name, result.baseline),
                format_score(name, result.candidate),
                format_score(name, result.delta, signed=True),
                format_interval(name, result.ci_low, result.ci_high),
                format_threshold(name, result),
                Text(status_words(result).replace("fail", "FAIL"), STATUS_STYLES[result.status]),
            )
        console.print(table)
    usage = usage_summary(prompt)
    if usage:
        console.print(Text(f"  {usage}", style="dim"))
    if prompt.verdict == "fail":
        for example in prompt.top_regressions[:WORST_EXAMPLES]:
            deltas = ", ".join(
                f"{name} {format_score(name, value, signed=True)}"
                for name, value in example.metric_deltas().items()
            )
            console.print(Text.assemble("  worst: ", (example.id, "bold"), f"  {deltas}"))


def print_mlflow(report: Report, console: Console) -> None:
    """Where the run was logged, and for a local store how to browse it."""
    info = report.mlflow
    if info.run_id:
        where = info.url or info.tracking_uri or ""
        experiment = f" (experiment {info.experiment_id})" if info.experiment_id else ""
        console.print(Text.assemble("MLflow run ", (info.run_id, "bold"), experiment, ": ", where))
        if not info.url and info.tracking_uri and info.tracking_uri.startswith("sqlite:///"):
            console.print(
                Text(f"  browse it: mlflow ui --backend-store-uri {info.tracking_uri}", "dim"),
                soft_wrap=True,
            )
    if info.warning:
        console.print(Text(f"MLflow: {info.warning}", style="yellow"))
