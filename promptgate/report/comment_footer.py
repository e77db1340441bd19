"""The bottom of the comment: where the MLflow run is, what the calls did, and how the gate
decides (folded)."""

from __future__ import annotations

import urllib.parse

from promptgate.report import escape
from promptgate.report.format import calls_summary
from promptgate.report.model import Report
from promptgate.sequential import gate_rule


def run_and_calls(report: Report) -> str:
    lines = []
    info = report.mlflow
    if info.run_id:
        run = escape.code_span(info.run_id)
        if info.url:
            run = f"[run {run}]({urllib.parse.quote(info.url, safe=':/#?&=%')})"
        else:
            run = f"run {run}"
        where = (
            f" in experiment {escape.code_span(info.experiment_id)}" if info.experiment_id else ""
        )
        store = (
            f" at {escape.inline(info.tracking_uri, 200)}"
            if info.tracking_uri and not info.url
            else ""
        )
        lines.append(f"MLflow: {run}{where}{store}")
    if info.warning:
        lines.append(f"⚠️ MLflow: {escape.inline(info.warning, 500)}")
    lines.append(f"Calls: {calls_summary(report.calls, ' · ')}")
    return "\n\n".join(lines)


def footer(report: Report) -> str:
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
            digest = f", hash {escape.code_span(gate.config_hash)}" if gate.config_hash else ""
            facts.append(f"- config {config}{source}{digest}")
        if gate.provider or gate.model:
            facts.append(
                f"- provider {escape.inline(gate.provider or '–', 80)}, "
                f"model {escape.inline(gate.model or '–', 120)}"
            )
        facts += [
            f"- {escape.inline(name, 40)}: {escape.code_span(signature)}"
            for name, signature in gate.signatures.items()
        ]
        lines += ["", *facts]
    lines += ["", "</details>"]
    return "\n".join(lines)
