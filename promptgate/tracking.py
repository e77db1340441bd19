"""Log a gate run to MLflow: one parent run per gate, one nested child per prompt and version.

    gate #42 ❌ (or gate <base7>..<head7> ❌)  tags, gate params, call and verdict counts, report.json
    ├── a.txt · baseline                      params, aggregates, prompt text
    └── a.txt · candidate ❌                  ... plus deltas, CI bounds, prompt-diff.txt, examples.json

Run names are what MLflow's runs list shows first, so they carry the verdict and tell the two
versions apart at a glance (a prompt's file name, its path where two share one). Metrics are
rounded to what a reader compares (BLEU 2 decimals, others 4); report.json keeps every digit.

A store that cannot be used is a warning and the verdict stands, unless `mlflow.required` is
set (DESIGN.md "Exit codes"). Only `MlflowClient` is used, never the fluent API, so no active
run or tracking URI is left behind in the caller's process; MLflow's HTTP settings are changed
only for the duration of the call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import threading
import time
import urllib.parse
import urllib.request
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from promptgate.background import import_in_background
from promptgate.config import MlflowConfig
from promptgate.errors import CouldNotEvaluate
from promptgate.evaluation import PromptEvaluation
from promptgate.report.format import PROMPT_ICONS, VERDICT_ICONS, decimals
from promptgate.report.model import MlflowInfo, PromptReport, Report, Usage
from promptgate.trust import SQLITE_COMPANIONS, untrusted_reason

if TYPE_CHECKING:
    from mlflow import MlflowClient

Version = Literal["baseline", "candidate"]

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow's own default for a new store
#: What a database tracking URI (sqlite:///, postgresql://, ...) loads: about 1.2 s more
SQL_STORE_MODULE = "mlflow.store.tracking.sqlalchemy_store"

# MLflow retries an unreachable store for minutes by default (7 retries, 2 s backoff factor,
# 120 s timeout). A CI gate should give up in seconds. A value the user set wins.
FAIL_FAST_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# set_terminated() would print a "View run" link to stdout; our reports carry the link.
FORCED_ENV = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
QUIET_LOGGERS = ("mlflow", "alembic")

EXAMPLES_TABLE = "examples.json"
#: The run tag that lists a run's table artifacts for the MLflow UI (as `log_table` sets it).
LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"
REPORT_ARTIFACT = "report.json"
DIFF_ARTIFACT = "prompt-diff.txt"  # .txt: a file type MLflow's UI previews
_MAX_RUN_NAME = 240
_INVALID_KEY_CHARS = re.compile(r"[^\w\-. /]")

logger = logging.getLogger(__name__)
#: `prepare_in_background`'s thread per tracking URI, which `log_gate_run` waits for
_preparing: dict[str, threading.Thread] = {}


class _StoreProblem(Exception):
    """A store problem already phrased for the user."""


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
    _wait_for_preparation(uri)
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


def prepare_in_background(settings: MlflowConfig, explicit: str | None = None) -> None:
    """While the calls run: import MLflow, and for a local sqlite store also open it, creating
    its tables when it is new (its schema migrations took 1.5-3 s after the verdict).
    `log_gate_run` waits for this before it uses the store."""
    uri = resolve_tracking_uri(settings, explicit)
    if sqlite_path(uri) is not None:
        thread = threading.Thread(
            target=_open_store_quietly, args=(uri,), name="promptgate-prepare-mlflow", daemon=True
        )
        _preparing[uri] = thread
        thread.start()
        return
    remote = uri.startswith(("http://", "https://", "databricks"))
    import_in_background("mlflow", *([] if remote else [SQL_STORE_MODULE]))


def _open_store_quietly(uri: str) -> None:
    # A failure here is met again by log_gate_run, which reports it.
    with contextlib.suppress(Exception), mlflow_environment():
        from mlflow import MlflowClient

        check_store_file(uri)
        ensure_sqlite_directory(uri)
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def _wait_for_preparation(uri: str) -> None:
    thread = _preparing.pop(uri, None)
    if thread is not None:
        thread.join()


def resolve_tracking_uri(
    settings: MlflowConfig, explicit: str | None = None, *, local_dir: Path | None = None
) -> str:
    """`explicit` > $MLFLOW_TRACKING_URI > the config > `sqlite:///mlflow.db`. With `local_dir`
    (the Action's state directory), a relative sqlite path is placed there rather than in the
    working directory, where a PR could have committed a store of its own."""
    uri = (
        explicit
        or os.environ.get(TRACKING_URI_ENV)
        or settings.tracking_uri
        or DEFAULT_TRACKING_URI
    )
    path = sqlite_path(uri)
    if local_dir is None or path is None or Path(path).is_absolute():
        return uri
    query = uri.partition("?")[2]
    return f"sqlite:///{(local_dir / path).as_posix()}" + (f"?{query}" if query else "")


def sqlite_path(uri: str) -> str | None:
    """The database file of a `sqlite:///` URI (None for other stores and in-memory ones)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return path if path and path != ":memory:" else None


def check_store_file(uri: str) -> None:
    """Refuse a sqlite store that came with the checkout: a store a PR committed (or reached
    through a link it committed) decides where the run's prompts, outputs and report go."""
    path = sqlite_path(uri)
    problem = path and untrusted_reason(Path(path), companions=SQLITE_COMPANIONS)
    if problem:
        raise _StoreProblem(
            f"the store file is not promptgate's to use ({problem}): a store that comes with "
            "the checkout could send the run's data wherever a PR chose. Keep it untracked, "
            "or set mlflow.tracking_uri to a server or a path outside the repository"
        )


def redact_uri(uri: str) -> str:
    """The URI without user or password: it is shown in PR comments and logs."""
    parts = urllib.parse.urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def run_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The MLflow UI page of a run, for an http(s) tracking server; None for other stores."""
    if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
        return None
    return f"{redact_uri(uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


# --- the environment MLflow runs in ------------------------------------------------------


@contextmanager
def mlflow_environment() -> Iterator[None]:
    """Fail-fast HTTP settings, quiet loggers and no deprecation noise, all restored afterwards."""
    import mlflow  # noqa: F401 - it sets its loggers' levels on import, so import before quieting

    changes = {k: v for k, v in FAIL_FAST_HTTP_ENV.items() if k not in os.environ} | FORCED_ENV
    saved_env = {key: os.environ.get(key) for key in changes}
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    saved_levels = [lg.level for lg in loggers]
    os.environ.update(changes)
    for lg in loggers:
        if lg.getEffectiveLevel() < logging.WARNING:
            lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # MLflow's own dependencies (SQLAlchemy, pandas) warn about MLflow's usage of them.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for lg, level in zip(loggers, saved_levels, strict=True):
            lg.setLevel(level)


def ensure_sqlite_directory(uri: str) -> None:
    """MLflow creates the database file but not its directory."""
    path = sqlite_path(uri)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


_PROBLEMS = (
    ("connection refused", "connection refused: is the server running?"),
    ("failed to establish a new connection", "connection failed: is the server running?"),
    ("timed out", "timed out"),
    ("name or service not known", "host not found"),
    ("temporary failure in name resolution", "host not found"),
    ("nodename nor servname", "host not found"),
    ("error code 401", "not authorized: check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME"),
    ("401 client error", "not authorized: check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME"),
    ("error code 403", "forbidden: check the credentials' permissions"),
    ("403 client error", "forbidden: check the credentials' permissions"),
    ("unable to open database file", "cannot open the SQLite database file"),
)


def describe_store_problem(exc: BaseException, uri: str) -> str:
    """One short phrase for a store failure; MLflow's own messages run to a screenful."""
    if isinstance(exc, _StoreProblem):
        return str(exc)
    text = str(exc).replace(uri, redact_uri(uri))
    lowered = text.lower()
    for needle, phrase in _PROBLEMS:
        if needle in lowered:
            return phrase
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first_line if len(first_line) <= 200 else first_line[:200] + "…"


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
    info.experiment_id = _experiment_id(client, settings.experiment, uri)
    parent = client.create_run(
        info.experiment_id, run_name=_parent_name(report), tags=_parent_tags(report) | tags
    )
    parent_id: str = parent.info.run_id
    info.run_id = parent_id
    info.url = run_url(uri, info.experiment_id, parent_id)
    try:
        _log_batch(
            client, parent_id, params=_parent_params(report), metrics=_parent_metrics(report)
        )
        labels = _prompt_labels([evaluation.report for evaluation in evaluations])
        for evaluation in evaluations:
            for version in _versions(evaluation):
                name = _child_name(labels[evaluation.report.path], evaluation, version)
                _log_child(client, info.experiment_id, parent_id, report, evaluation, version, name)
        filled = report.model_copy(update={"mlflow": info.model_copy()})
        client.log_text(parent_id, filled.model_dump_json(indent=2), REPORT_ARTIFACT)
    except BaseException:
        _terminate_quietly(client, parent_id, "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")


def _artifact_location(uri: str) -> str | None:
    """Beside a sqlite store's file, not MLflow's default `./mlruns` in whatever the cwd is."""
    path = sqlite_path(uri)
    if path is None:
        return None
    return (Path(path).resolve().parent / "mlartifacts").as_uri()


def _check_artifact_location(uri: str, name: str, location: str) -> None:
    """A local store's experiment keeps its artifacts beside the store, where promptgate put
    them. Anywhere else (another directory, an http:// or s3:// location) was chosen by whoever
    wrote the store, not by the trusted config, so nothing is sent there."""
    path = sqlite_path(uri)
    if path is None:
        return  # a tracking server decides where its artifacts go
    home = Path(path).resolve().parent
    parts = urllib.parse.urlsplit(location)
    if parts.scheme == "file":
        target = Path(urllib.request.url2pathname(parts.path))
    elif not parts.scheme:
        target = Path(location)
    else:
        target = None
    if target is None or not target.resolve().is_relative_to(home):
        raise _StoreProblem(
            f"experiment '{name}' keeps its artifacts at {redact_uri(location)}, outside the "
            f"store's directory {home}; promptgate sends artifacts only where it made the "
            "experiment. Set mlflow.experiment to a new name, or use a store promptgate created"
        )


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name, artifact_location=_artifact_location(uri)))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)  # created concurrently
            if experiment is None:
                raise
    _check_artifact_location(uri, name, experiment.artifact_location)
    if experiment.lifecycle_stage == "deleted":
        raise _StoreProblem(
            f"experiment '{name}' is deleted; restore it (`mlflow experiments restore`) or set "
            "mlflow.experiment to another name"
        )
    return str(experiment.experiment_id)


def _parent_name(report: Report) -> str:
    icon = VERDICT_ICONS[report.verdict]
    if report.pr_number is not None:
        return f"gate #{report.pr_number} {icon}"
    return f"gate {report.base.sha[:7]}..{report.head.sha[:7]} {icon}"


def _prompt_labels(prompts: Sequence[PromptReport]) -> dict[str, str]:
    """Each prompt's name in run names: its file name, or its path where two share a name."""
    names = Counter(PurePosixPath(p.path).name for p in prompts)
    return {
        p.path: p.path if names[PurePosixPath(p.path).name] > 1 else PurePosixPath(p.path).name
        for p in prompts
    }


def _child_name(label: str, evaluation: PromptEvaluation, version: Version) -> str:
    """`a.txt · baseline`, `a.txt · candidate ❌`: the compared run carries the prompt's verdict."""
    prompt = evaluation.report
    compared = version == _versions(evaluation)[-1]
    icon = f" {PROMPT_ICONS[prompt.verdict]}" if compared else ""
    return f"{label} · {version}{icon}"[-_MAX_RUN_NAME:]


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
) -> None:
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
