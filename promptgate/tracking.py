"""Log a gate run to MLflow: one parent run per gate, one nested child per prompt and version.

    ❌ gate #42                tags, gate params, call and verdict counts, report.json
    ├── a.txt · baseline       params, aggregates, prompt text
    └── ❌ a.txt · candidate   ... plus deltas, CI bounds, prompt-diff.txt, examples.json

(outside a PR the parent is `❌ gate <base7>..<head7>`). The verdict comes first: MLflow's runs
list cuts long names off on the right.
Run names are what MLflow's runs list shows first, so they carry the verdict and tell the two
versions apart at a glance (a prompt's file name, its path where two share one). Metrics are
rounded to what a reader compares (BLEU 2 decimals, others 4); report.json keeps every digit.

A store that cannot be used is a warning and the verdict stands, unless `mlflow.required` is
set (DESIGN.md "Exit codes"). Only `MlflowClient` is used, never the fluent API, so no active
run or tracking URI is left behind in the caller's process; MLflow's HTTP settings are changed
only for the duration of the call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from promptgate.config import MlflowConfig
from promptgate.errors import CouldNotEvaluate
from promptgate.evaluation import PromptEvaluation, worst_first
from promptgate.mlflow_records import log_example_traces
from promptgate.mlflow_store import (
    check_store_file,
    describe_store_problem,
    ensure_sqlite_directory,
    mlflow_environment,
    open_experiment,
    redact_uri,
    resolve_tracking_uri,
    run_url,
    wait_for_preparation,
)
from promptgate.registry.link import link_registered_version
from promptgate.report.format import PROMPT_ICONS, VERDICT_ICONS, decimals
from promptgate.report.model import MlflowInfo, PromptReport, Report, Usage

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput

Version = Literal["baseline", "candidate"]


EXAMPLES_TABLE = "examples.json"
#: The run tag that lists a run's table artifacts for the MLflow UI (as `log_table` sets it).
LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"
REPORT_ARTIFACT = "report.json"
DIFF_ARTIFACT = "prompt-diff.txt"  # .txt: a file type MLflow's UI previews
_MAX_RUN_NAME = 240
_INVALID_KEY_CHARS = re.compile(r"[^\w\-. /]")

logger = logging.getLogger(__name__)


def log_gate_run(
    report: Report,
    evaluations: Sequence[PromptEvaluation],
    settings: MlflowConfig,
    *,
    tracking_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> MlflowInfo:
    """Log the gate to MLflow and say where it went.

    The tracking URI is, in order: `tracking_uri`, $MLFLOW_TRACKING_URI, `settings.tracking_uri`,
    then MLflow's default `sqlite:///mlflow.db` (relative to the working directory). The
    returned info has `warning` set when the store could not be used, or raises
    `CouldNotEvaluate` instead when `settings.required`.
    """
    uri = resolve_tracking_uri(settings, tracking_uri)
    wait_for_preparation(uri)
    info = MlflowInfo(tracking_uri=redact_uri(uri))
    try:
        with mlflow_environment():
            _log(report, evaluations, settings, uri, dict(tags or {}), info)
    except Exception as exc:  # any store failure; the verdict must not depend on the tracker
        logger.debug("logging to MLflow failed", exc_info=True)
        problem = describe_store_problem(exc, uri)
        if settings.required:
            raise CouldNotEvaluate(
                f"MLflow tracking store {info.tracking_uri} could not be used: {problem}. "
                "mlflow.required is true, so the gate cannot finish; fix the store or set "
                "mlflow.required: false to make this a warning."
            ) from exc
        what = (
            f"MLflow run {info.run_id} is incomplete"
            if info.run_id
            else f"MLflow tracking store {info.tracking_uri} could not be used"
        )
        info.warning = (
            f"{what} ({problem}); the verdict stands. "
            "Check mlflow.tracking_uri / MLFLOW_TRACKING_URI."
        )
    return info


# --- the environment MLflow runs in ------------------------------------------------------


# --- what is logged ------------------------------------------------------------------------


def _log(
    report: Report,
    evaluations: Sequence[PromptEvaluation],
    settings: MlflowConfig,
    uri: str,
    tags: dict[str, str],
    info: MlflowInfo,
) -> None:
    """Log everything, filling `info` as soon as each part is known (a failure keeps them)."""
    from mlflow import MlflowClient

    check_store_file(uri)
    ensure_sqlite_directory(uri)
    client = MlflowClient(tracking_uri=uri)
    info.experiment_id = open_experiment(client, settings.experiment, uri)
    parent = client.create_run(
        info.experiment_id, run_name=_parent_name(report), tags=_parent_tags(report) | tags
    )
    parent_id: str = parent.info.run_id
    info.run_id = parent_id
    info.url = run_url(uri, info.experiment_id, parent_id, settings.ui_url)
    try:
        _log_batch(
            client, parent_id, params=_parent_params(report), metrics=_parent_metrics(report)
        )
        labels = _prompt_labels([evaluation.report for evaluation in evaluations])
        for evaluation in evaluations:
            for version in _versions(evaluation):
                name = _child_name(labels[evaluation.report.path], evaluation, version)
                run_id = _log_child(
                    client, info.experiment_id, parent_id, report, evaluation, version, name
                )
                _log_traces(uri, info.experiment_id, run_id, evaluation, version, settings)
        filled = report.model_copy(update={"mlflow": info.model_copy()})
        client.log_text(parent_id, filled.model_dump_json(indent=2), REPORT_ARTIFACT)
    except BaseException:
        _terminate_quietly(client, parent_id, "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")


def _parent_name(report: Report) -> str:
    icon = VERDICT_ICONS[report.verdict]
    if report.pr_number is not None:
        return f"{icon} gate #{report.pr_number}"
    head = "working tree" if report.head.uncommitted is not None else report.head.sha[:7]
    partial = " (partial)" if report.partial else ""
    return f"{icon} gate {report.base.sha[:7]}..{head}{partial}"


def _prompt_labels(prompts: Sequence[PromptReport]) -> dict[str, str]:
    """Each prompt's name in run names: its file name, or its path where two share a name."""
    names = Counter(PurePosixPath(p.path).name for p in prompts)
    return {
        p.path: p.path if names[PurePosixPath(p.path).name] > 1 else PurePosixPath(p.path).name
        for p in prompts
    }


def _child_name(label: str, evaluation: PromptEvaluation, version: Version) -> str:
    """`a.txt · baseline`, `❌ a.txt · candidate`: the compared run carries the prompt's verdict,
    first, where the runs list's narrow name column cannot cut it off."""
    prompt = evaluation.report
    compared = version == _versions(evaluation)[-1]
    icon = f"{PROMPT_ICONS[prompt.verdict]} " if compared else ""
    return f"{icon}{label} · {version}"[:_MAX_RUN_NAME]


def _versions(evaluation: PromptEvaluation) -> list[Version]:
    change = evaluation.report.change
    if change == "added":
        return ["candidate"]
    if change == "deleted":
        return ["baseline"]
    return ["baseline", "candidate"]


def _parent_tags(report: Report) -> dict[str, str]:
    tags = {
        "promptgate.verdict": report.verdict,
        "promptgate.base.ref": report.base.ref,
        "promptgate.base.sha": report.base.sha,
        "promptgate.head.ref": report.head.ref,
        "promptgate.head.sha": report.head.sha,
        "promptgate.config_changed": str(report.config_changed).lower(),
        "promptgate.dataset_changed": str(any(p.dataset_changed for p in report.prompts)).lower(),
        "mlflow.source.git.commit": report.head.sha,
    }
    if report.pr_number is not None:
        tags["promptgate.pr"] = str(report.pr_number)
    if report.head.uncommitted is not None:  # the head is the working tree on top of head.sha
        tags["promptgate.head.uncommitted"] = ", ".join(report.head.uncommitted)[:5000]
    if report.partial is not None:
        tags["promptgate.partial"] = f"{report.partial.examples} of {report.partial.of} examples"
    if report.gate is not None and report.gate.config_hash:
        tags["promptgate.config_hash"] = report.gate.config_hash
    if report.override is not None:
        override = report.override
        tags["promptgate.override.label"] = override.label
        tags["promptgate.override.accepted"] = str(override.accepted).lower()
        if override.actor:
            tags["promptgate.override.actor"] = override.actor
        if override.permission:
            tags["promptgate.override.permission"] = override.permission
        if override.reason:
            tags["promptgate.override.reason"] = override.reason[:4000]
    return tags


def _parent_params(report: Report) -> dict[str, object]:
    params: dict[str, object] = {}
    gate = report.gate
    if gate is not None:
        params |= {
            "gate.confidence": gate.confidence,
            "gate.samples": "auto" if gate.adaptive else gate.samples,
            "gate.max_samples": gate.max_samples,
            "gate.rounds": gate.rounds if gate.adaptive else None,
            "gate.error_rate": gate.error_rate,
            "gate.bootstrap_resamples": gate.bootstrap_resamples,
            "gate.seed": gate.seed,
            "gate.config_path": gate.config_path,
            "gate.config_source": gate.config_source,
            "gate.config_hash": gate.config_hash,
            "provider": gate.provider,
            "model": gate.model,
            "gate.on_dataset_change": gate.on_dataset_change,
        }
        params |= {f"signature.{name}": sig for name, sig in gate.signatures.items()}
    for prompt in report.prompts:
        for name, result in prompt.metrics.items():
            params.setdefault(f"threshold.{name}.max_drop", result.threshold)
            if result.min is not None:
                params.setdefault(f"threshold.{name}.min", result.min)
    return params


def _parent_metrics(report: Report) -> dict[str, float | None]:
    calls = report.calls.model_dump()
    metrics: dict[str, float | None] = {f"calls.{k}": float(v) for k, v in calls.items()}
    for verdict in ("pass", "fail", "new", "removed", "error"):
        metrics[f"prompts.{verdict}"] = float(sum(p.verdict == verdict for p in report.prompts))
    metrics["prompts.total"] = float(len(report.prompts))
    if report.usage is not None:
        metrics |= _usage_metrics(report.usage)
    return metrics


def _usage_metrics(usage: Usage) -> dict[str, float | None]:
    """`usage.*`: what the answers cost (a null figure is left out, as every null metric is)."""
    figures = usage.model_dump()
    figures["tokens_per_call"] = usage.tokens_per_call
    return {f"usage.{name}": None if v is None else float(v) for name, v in figures.items()}


def _log_child(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    report: Report,
    evaluation: PromptEvaluation,
    version: Version,
    run_name: str,
) -> str:
    prompt = evaluation.report
    path = (prompt.old_path or prompt.path) if version == "baseline" else prompt.path
    text = evaluation.baseline_text if version == "baseline" else evaluation.candidate_text
    generation = evaluation.generation.get(version)
    tags = {
        "mlflow.parentRunId": parent_id,
        "promptgate.prompt": prompt.path,
        "promptgate.version": version,
        "promptgate.change": prompt.change,
        "promptgate.prompt_verdict": prompt.verdict,
        "promptgate.dataset_changed": str(prompt.dataset_changed).lower(),
    }
    if prompt.reason:
        tags["promptgate.prompt_verdict_reason"] = prompt.reason[:4000]
    # The diff and the examples belong to the comparison: the candidate child, or the only one.
    compared = version == _versions(evaluation)[-1]
    table = _examples_table(evaluation) if compared else {}
    if table:  # as `log_table` tags it, so that the MLflow UI shows the artifact as a table
        tags[LOGGED_ARTIFACTS_TAG] = json.dumps([{"path": EXAMPLES_TABLE, "type": "table"}])
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id: str = run.info.run_id
    params: dict[str, object] = {
        "prompt.path": path,
        "prompt.version": version,
        "prompt.hash": prompt.baseline_hash if version == "baseline" else prompt.candidate_hash,
        "prompt.change": prompt.change,
        "dataset": prompt.dataset,
        "examples": prompt.examples,
        "samples": prompt.samples,
        "provider": report.gate.provider if report.gate else None,
        "model": generation.model if generation else prompt.model,
    }
    if generation is not None:
        params |= {"temperature": generation.temperature, "max_tokens": generation.max_tokens}
    if prompt.dataset_diff is not None:
        params |= {f"dataset.{k}": v for k, v in prompt.dataset_diff.model_dump().items()}
    metrics: dict[str, float | None] = {}
    for name, result in prompt.metrics.items():
        score = result.baseline if version == "baseline" else result.candidate
        metrics[name] = _rounded(name, score)
        if version == "candidate":
            metrics |= {
                f"{name}.delta": _rounded(name, result.delta),
                f"{name}.ci_low": _rounded(name, result.ci_low),
                f"{name}.ci_high": _rounded(name, result.ci_high),
                f"{name}.failed": float(result.status == "fail"),
            }
    if usage := prompt.usage.get(version):
        metrics |= _usage_metrics(usage)
    try:
        _log_batch(client, run_id, params=params, metrics=metrics)
        if dataset := _dataset_input(evaluation, report.head.sha):
            client.log_inputs(run_id, datasets=[dataset])
        text_hash = prompt.baseline_hash if version == "baseline" else prompt.candidate_hash
        link_registered_version(client, run_id, path, text_hash)
        if text is not None:
            client.log_text(run_id, text, f"prompt/{_file_name(path)}")
        if compared and prompt.diff:
            client.log_text(run_id, prompt.diff, DIFF_ARTIFACT)
        if table:
            client.log_text(run_id, _table_json(table), EXAMPLES_TABLE)
    except BaseException:
        _terminate_quietly(client, run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _log_traces(
    uri: str,
    experiment_id: str,
    run_id: str,
    evaluation: PromptEvaluation,
    version: Version,
    settings: MlflowConfig,
) -> None:
    """Up to `mlflow.traces` of the version's examples as traces of its run, worst first."""
    if settings.traces == 0 or not evaluation.examples:
        return
    thresholds = {name: m.threshold for name, m in evaluation.report.metrics.items()}
    shown = worst_first(evaluation.examples, thresholds)[: settings.traces]
    name = PurePosixPath(evaluation.report.path).name
    log_example_traces(uri, experiment_id, run_id, name, version, shown)


def _dataset_input(evaluation: PromptEvaluation, head_sha: str) -> DatasetInput | None:
    """The eval set both versions ran on, as an MLflow dataset input (the runs list's Dataset
    column): its path, a digest of its examples, where it came from, how many rows."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    prompt = evaluation.report
    if not prompt.dataset or not evaluation.examples:
        return None
    content = json.dumps([[e.id, e.expected] for e in evaluation.examples], ensure_ascii=False)
    dataset = Dataset(
        name=prompt.dataset,
        digest=hashlib.sha256(content.encode()).hexdigest()[:16],
        source_type="git",
        source=json.dumps({"path": prompt.dataset, "commit": head_sha}),
        profile=json.dumps({"num_rows": len(evaluation.examples)}),
    )
    return DatasetInput(dataset=dataset, tags=[InputTag(key="mlflow.data.context", value="eval")])


def _rounded(metric: str, value: float | None) -> float | None:
    """To two decimals more than the comment shows: BLEU (0-100) 2 decimals, others 4."""
    if value is None or not math.isfinite(value):
        return value
    return round(value, decimals(metric) + 1)


def _examples_table(evaluation: PromptEvaluation) -> dict[str, list[Any]]:
    """Every example's outputs and scores, one row each, for MLflow's table view."""
    examples = evaluation.examples
    if not examples:
        return {}
    metrics = sorted(
        {name for ex in examples for name in (*ex.baseline_scores, *ex.candidate_scores)}
    )
    table: dict[str, list[Any]] = {
        "id": [ex.id for ex in examples],
        "expected": [ex.expected for ex in examples],
        "baseline_output": [_first(ex.baseline_outputs) for ex in examples],
        "candidate_output": [_first(ex.candidate_outputs) for ex in examples],
    }
    if any(len(ex.baseline_outputs or ex.candidate_outputs or []) > 1 for ex in examples):
        table["baseline_samples"] = [ex.baseline_outputs for ex in examples]
        table["candidate_samples"] = [ex.candidate_outputs for ex in examples]
    if any(ex.refusals() for ex in examples):
        table["baseline_refusal"] = [ex.baseline_refusal for ex in examples]
        table["candidate_refusal"] = [ex.candidate_refusal for ex in examples]
    # No dots in column names: MLflow's table view leaves such columns blank.
    for name in metrics:
        table[f"baseline_{name}"] = [ex.baseline_scores.get(name) for ex in examples]
        table[f"candidate_{name}"] = [ex.candidate_scores.get(name) for ex in examples]
        table[f"delta_{name}"] = [ex.deltas().get(name) for ex in examples]
    return table


def _table_json(table: Mapping[str, list[Any]]) -> str:
    """What `client.log_table` writes, without pandas (mlflow-skinny does not bring it): the
    columns and rows as pandas' `to_json(orient="split", index=False)` writes them; the run's
    tags list it as a table (LOGGED_ARTIFACTS_TAG)."""
    rows = [[_json_value(value) for value in row] for row in zip(*table.values(), strict=True)]
    return json.dumps({"columns": list(table), "data": rows}, ensure_ascii=False, allow_nan=False)


def _json_value(value: Any) -> Any:
    """A cell as pandas writes it: a score that is not finite is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _first(outputs: list[str] | None) -> str | None:
    return outputs[0] if outputs else None


def _file_name(path: str) -> str:
    name = PurePosixPath(path).name
    return name if name not in ("", ".", "..") else "prompt.txt"


def _key(name: str) -> str:
    """MLflow keys allow letters, digits, `_ - . /` and space."""
    return _INVALID_KEY_CHARS.sub("_", name)


def _log_batch(
    client: MlflowClient,
    run_id: str,
    *,
    params: Mapping[str, object],
    metrics: Mapping[str, float | None],
) -> None:
    """One request for a run's params and metrics; None and non-finite values are left out."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        params=[Param(_key(k), str(v)[:6000]) for k, v in params.items() if v is not None],
        metrics=[
            Metric(_key(k), float(v), now, 0)
            for k, v in metrics.items()
            if v is not None and math.isfinite(v)
        ],
    )


def _terminate_quietly(client: MlflowClient, run_id: str, status: str) -> None:
    try:
        client.set_terminated(run_id, status)
    except Exception:  # the store is already failing; the original error is what matters
        logger.debug("could not mark MLflow run %s %s", run_id, status, exc_info=True)
