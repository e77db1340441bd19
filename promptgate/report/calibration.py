"""`promptgate calibrate`'s findings for the terminal: the noise per metric and what to set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from promptgate.report.escape import terminal_model
from promptgate.report.format import calls_summary, format_interval, format_score

if TYPE_CHECKING:
    from promptgate.calibrate import Calibration

STATUS_TEXT = {
    "ok": Text("ok", style="green"),
    "tight": Text("tight: above the floor, below the suggestion", style="yellow"),
    "below-noise": Text("BELOW NOISE: expect false fails", style="bold red"),
    "no-noise": Text("no noise seen (deterministic outputs?)", style="dim"),
}


def print_calibration(calibration: Calibration, console: Console) -> None:
    calibration = terminal_model(calibration)  # paths shown with control characters escaped
    console.print(
        Text.assemble(
            ("promptgate calibrate", "bold"),
            f"  A/A at {calibration.sha[:7]} (",
            calibration.ref,
            f"): {calibration.provider} ",
            calibration.model,
            f", temperature {calibration.temperature:g}, {calibration.samples} sample(s) per "
            f"example and side",
        )
    )
    for warning in calibration.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    confidence = f"{calibration.confidence * 100:g}% CI"
    for prompt in calibration.prompts:
        console.print()
        console.print(Text.assemble((prompt.path, "bold"), f" ({prompt.examples} examples)"))
        table = Table(box=None, padding=(0, 1), show_edge=False)
        columns = ("  metric", "A/A Δ", confidence, "std err", "floor (1%)", "suggest", "max_drop")
        for column in (*columns, "status"):
            table.add_column(
                column, justify="left" if column in ("  metric", "status") else "right"
            )
        for name, noise in prompt.metrics.items():
            table.add_row(
                Text(f"  {name}"),
                format_score(name, noise.delta, signed=True),
                format_interval(name, noise.ci_low, noise.ci_high),
                f"{noise.standard_error:.3g}",
                format_score(name, noise.noise_floor),
                format_score(name, noise.suggested_max_drop),
                format_score(name, noise.max_drop),
                STATUS_TEXT[noise.status],
            )
        console.print(table)
    console.print()
    console.print("Suggested metrics for promptgate.yaml (max_drop = 3 × the A/A standard error):")
    for name, value in calibration.suggested_max_drop.items():
        console.print(Text(f"  {name}: {{ max_drop: {format_score(name, value)} }}"))
    console.print(
        "To detect smaller drops, add examples or raise gate.samples: the noise shrinks with the "
        "square root of their number.",
        markup=False,
    )
    console.print(f"Calls: {calls_summary(calibration.calls)}", markup=False)
