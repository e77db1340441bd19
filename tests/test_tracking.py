"""Logging a gate run to a real MLflow store: a SQLite file, an unreachable server, a live server."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fresh_python import python_stdout
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow_server import MlflowServer, closed_port

from promptgate.config import GATE_RULE, MlflowConfig
from promptgate.errors import CouldNotEvaluate
from promptgate.evaluation import ExampleResult, GenerationSettings, PromptEvaluation
from promptgate.mlflow_store import FAIL_FAST_HTTP_ENV
from promptgate.report.model import (
    CallStats,
    ExampleChange,
    GateInfo,
    GitSide,
    MetricResult,
    MlflowInfo,
    PromptReport,
    Report,
)
from promptgate.tracking import log_gate_run

BASE_SHA = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
HEAD_SHA = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
DIFF = (
    "--- a/prompts/summarize.txt\n+++ b/prompts/summarize.txt\n@@ -1 +1 @@\n-Summarize:\n+TL;DR:\n"
)


# --- builders ------------------------------------------------------------------------------


def bleu(baseline: float | None, candidate: float | None, status: str = "pass") -> MetricResult:
    delta = None if baseline is None or candidate is None else candidate - baseline
    return MetricResult.model_validate(
        {
            "baseline": baseline,
            "candidate": candidate,
            "delta": delta,
            "ci_low": None if delta is None else delta - 1.5,
            "ci_high": None if delta is None else delta + 1.5,
            "threshold": 2.0,
            "status": status,
        }
    )


def evaluation(
    path: str,
    change: str,
    verdict: str,
    *,
    old_path: str | None = None,
    metric: MetricResult | None = None,
) -> PromptEvaluation:
    has_baseline = change != "added"
    has_candidate = change != "deleted"
    examples = [
        ExampleResult(
            id=f"ex-{i}",
            expected=f"expected {i}",
            baseline_outputs=[f"old output {i}"] if has_baseline else None,
            candidate_outputs=[f"new output {i}"] if has_candidate else None,
            baseline_scores={"bleu": 40.0 + i} if has_baseline else {},
            candidate_scores={"bleu": 30.0 + i} if has_candidate else {},
        )
        for i in range(3)
    ]
    compared = examples if has_baseline and has_candidate else []
    report = PromptReport.model_validate(
        {
            "path": path,
            "old_path": old_path,
            "change": change,
            "verdict": verdict,
            "dataset": "evals/summarize.jsonl",
            "examples": len(examples),
            "metrics": {"bleu": metric} if metric else {},
            "top_regressions": [change_of(ex) for ex in compared[:2]],
            "baseline_hash": "b" * 12 if has_baseline else None,
            "candidate_hash": "c" * 12 if has_candidate else None,
            "model": "gpt-4o-mini",
            "diff": DIFF,
        }
    )
    settings = GenerationSettings(model="gpt-4o-mini", temperature=0.0, max_tokens=256)
    return PromptEvaluation(
        report=report,
        baseline_text=f"baseline text of {old_path or path}" if has_baseline else None,
        candidate_text=f"candidate text of {path}" if has_candidate else None,
        examples=examples,
        generation={"baseline": settings, "candidate": settings},
    )


def change_of(example: ExampleResult) -> ExampleChange:
    return ExampleChange.model_validate(
        {
            "id": example.id,
            "baseline_output": example.baseline_outputs[0] if example.baseline_outputs else None,
            "candidate_output": example.candidate_outputs[0] if example.candidate_outputs else None,
            **example.deltas(),
        }
    )


def gate_report(evaluations: list[PromptEvaluation], verdict: str = "fail") -> Report:
    return Report.model_validate(
        {
            "verdict": verdict,
            "base": GitSide(ref="main", sha=BASE_SHA),
            "head": GitSide(ref="feature", sha=HEAD_SHA),
            "prompts": [e.report for e in evaluations],
            "calls": CallStats(requested=24, cached=6, made=18, retried=2, failed=0),
            "gate": GateInfo(
                rule=GATE_RULE,
                confidence=0.95,
                samples=1,
                bootstrap_resamples=2000,
                seed=7,
                config_path="promptgate.yaml",
                config_source="base",
                config_hash="feedface12345678",
                provider="offline",
                model="gpt-4o-mini",
                signatures={"bleu": "nrefs:1|case:mixed|tok:13a"},
            ),
            "pr_number": 42,
        }
    )


def four_kinds_of_change() -> list[PromptEvaluation]:
    return [
        evaluation("prompts/summarize.txt", "modified", "fail", metric=bleu(40.0, 30.0, "fail")),
        evaluation("prompts/new-name.txt", "renamed", "pass", old_path="prompts/old-name.txt",
                   metric=bleu(40.0, 40.5)),
        evaluation("prompts/added.txt", "added", "new", metric=bleu(None, 35.0)),
        evaluation("prompts/deleted.txt", "deleted", "removed"),
    ]  # fmt: skip


@dataclass
class Logged:
    client: MlflowClient
    info: MlflowInfo
    parent: Run
    children: dict[tuple[str, str], Run]  # (promptgate.prompt, version) -> run
    store: Path


def child_runs(client: MlflowClient, experiment_id: str, parent_id: str) -> list[Run]:
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return list(runs)


def artifact_text(client: MlflowClient, run_id: str, path: str, tmp: Path) -> str:
    local = client.download_artifacts(run_id, path, str(tmp))
    return Path(local).read_text()


# --- one gate run logged to a SQLite store, inspected by several tests --------------------


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory that is also the working directory, where MLflow puts `./mlruns`."""
    store = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield store


@pytest.fixture(scope="module")
def logged(sqlite_store: Path) -> Logged:
    uri = f"sqlite:///{sqlite_store}/mlflow.db"
    report = gate_report(four_kinds_of_change())
    info = log_gate_run(
        report,
        four_kinds_of_change(),
        MlflowConfig(tracking_uri=uri, experiment="prompts"),
        tags={"ci.job": "123"},
    )
    assert info.warning is None
    assert info.run_id is not None and info.experiment_id is not None
    client = MlflowClient(tracking_uri=uri)
    children = child_runs(client, info.experiment_id, info.run_id)
    return Logged(
        client=client,
        info=info,
        parent=client.get_run(info.run_id),
        children={
            (run.data.tags["promptgate.prompt"], run.data.tags["promptgate.version"]): run
            for run in children
        },
        store=sqlite_store,
    )


def test_each_prompt_version_is_a_child_of_one_gate_run(logged: Logged) -> None:
    assert "mlflow.parentRunId" not in logged.parent.data.tags
    assert logged.parent.info.run_name == "❌ gate #42"  # the verdict and the PR, in the list
    assert logged.parent.info.status == "FINISHED"
    assert sorted(logged.children) == [
        ("prompts/added.txt", "candidate"),
        ("prompts/deleted.txt", "baseline"),
        ("prompts/new-name.txt", "baseline"),
        ("prompts/new-name.txt", "candidate"),
        ("prompts/summarize.txt", "baseline"),
        ("prompts/summarize.txt", "candidate"),
    ]
    for run in logged.children.values():
        assert run.data.tags["mlflow.parentRunId"] == logged.info.run_id
        assert run.info.status == "FINISHED"
    # The list tells the versions apart by name; the compared run carries the verdict.
    names = {key: run.info.run_name for key, run in logged.children.items()}
    assert names[("prompts/summarize.txt", "baseline")] == "summarize.txt · baseline"
    assert names[("prompts/summarize.txt", "candidate")] == "❌ summarize.txt · candidate"
    assert names[("prompts/added.txt", "candidate")] == "🆕 added.txt · candidate"
    assert names[("prompts/deleted.txt", "baseline")] == "🗑️ deleted.txt · baseline"


def test_the_info_names_the_store_experiment_and_run(logged: Logged) -> None:
    assert logged.info.tracking_uri == f"sqlite:///{logged.store}/mlflow.db"
    assert logged.info.url is None  # no web UI behind a SQLite file
    experiment = logged.client.get_experiment(logged.info.experiment_id or "")
    assert experiment.name == "prompts"


def test_the_gate_run_carries_verdict_refs_pr_config_and_given_tags(logged: Logged) -> None:
    tags = logged.parent.data.tags
    assert tags["promptgate.verdict"] == "fail"
    assert tags["promptgate.base.ref"] == "main"
    assert tags["promptgate.base.sha"] == BASE_SHA
    assert tags["promptgate.head.sha"] == HEAD_SHA
    assert tags["promptgate.pr"] == "42"
    assert tags["promptgate.config_hash"] == "feedface12345678"
    assert tags["ci.job"] == "123"
    params = logged.parent.data.params
    assert params["gate.confidence"] == "0.95"
    assert params["gate.bootstrap_resamples"] == "2000"
    assert params["provider"] == "offline"
    assert params["model"] == "gpt-4o-mini"
    assert params["threshold.bleu.max_drop"] == "2.0"
    assert params["signature.bleu"] == "nrefs:1|case:mixed|tok:13a"
    metrics = logged.parent.data.metrics
    assert metrics["calls.requested"] == 24
    assert metrics["calls.retried"] == 2
    assert metrics["prompts.fail"] == 1
    assert metrics["prompts.new"] == 1
    assert metrics["prompts.removed"] == 1
    assert metrics["prompts.total"] == 4


def test_a_candidate_child_has_its_aggregates_deltas_and_interval(logged: Logged) -> None:
    run = logged.children[("prompts/summarize.txt", "candidate")]
    assert run.data.params["prompt.hash"] == "c" * 12
    assert run.data.params["prompt.version"] == "candidate"
    assert run.data.params["model"] == "gpt-4o-mini"
    assert run.data.params["temperature"] == "0.0"
    assert run.data.params["max_tokens"] == "256"
    assert run.data.metrics["bleu"] == 30.0
    assert run.data.metrics["bleu.delta"] == -10.0
    assert run.data.metrics["bleu.ci_low"] == -11.5
    assert run.data.metrics["bleu.ci_high"] == -8.5
    assert run.data.metrics["bleu.failed"] == 1.0


def test_metrics_are_rounded_for_reading_and_two_prompts_sharing_a_name_keep_their_paths(
    sqlite_store: Path,
) -> None:
    uri = f"sqlite:///{sqlite_store}/rounded.db"
    noisy = bleu(35.63574309074793, 33.12345678, "pass")
    evaluations = [
        evaluation("prompts/a/summarize.txt", "modified", "pass", metric=noisy),
        evaluation("prompts/b/summarize.txt", "modified", "pass", metric=noisy),
    ]
    report = gate_report(evaluations, verdict="pass").model_copy(update={"pr_number": None})
    info = log_gate_run(report, evaluations, MlflowConfig(tracking_uri=uri, experiment="r"))
    assert info.run_id is not None and info.experiment_id is not None
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(info.run_id).info.run_name == "✅ gate 1111111..2222222"
    children = child_runs(client, info.experiment_id, info.run_id)
    assert sorted(run.info.run_name for run in children) == [
        "prompts/a/summarize.txt · baseline",
        "prompts/b/summarize.txt · baseline",
        "✅ prompts/a/summarize.txt · candidate",
        "✅ prompts/b/summarize.txt · candidate",
    ]
    candidate = next(run for run in children if run.info.run_name.startswith("✅"))
    assert candidate.data.metrics["bleu"] == 33.12
    assert candidate.data.metrics["bleu.delta"] == round(33.12345678 - 35.63574309074793, 2)


def test_each_child_names_the_eval_set_it_ran_on_as_its_dataset_input(logged: Logged) -> None:
    digests = set()
    for (path, version), child in logged.children.items():
        run = logged.client.get_run(child.info.run_id)  # with its inputs
        (given,) = run.inputs.dataset_inputs
        assert given.dataset.name == "evals/summarize.jsonl", (path, version)
        assert json.loads(given.dataset.profile) == {"num_rows": 3}
        assert json.loads(given.dataset.source) == {
            "path": "evals/summarize.jsonl",
            "commit": HEAD_SHA,
        }
        assert [(t.key, t.value) for t in given.tags] == [("mlflow.data.context", "eval")]
        digests.add(given.dataset.digest)
    assert len(digests) == 1  # the same examples everywhere: one digest


def test_each_version_s_answers_are_traces_of_its_run_with_scores_as_assessments(
    logged: Logged,
) -> None:
    """What MLflow 3's GenAI pages read: traces linked to a run ("Evaluation runs" lists it,
    and comparing the two versions' runs pairs their answers to each example)."""
    experiment = logged.info.experiment_id or ""
    for version, output, score in (
        ("baseline", "old output", 40.0),
        ("candidate", "new output", 30.0),
    ):
        run = logged.children[("prompts/summarize.txt", version)]
        traces = logged.client.search_traces(locations=[experiment], run_id=run.info.run_id)
        assert len(traces) == 3, version
        for trace in traces:
            example = trace.info.tags["promptgate.example"]
            index = int(example.removeprefix("ex-"))
            assert json.loads(trace.info.request_preview or "") == {"example": example}
            assert json.loads(trace.info.response_preview or "") == {"output": f"{output} {index}"}
            assert trace.info.tags["promptgate.version"] == version
            assert trace.info.tags["mlflow.traceName"] == "summarize.txt"
            assert {(a.name, a.value) for a in trace.info.assessments} == {("bleu", score + index)}
            (span,) = trace.data.spans
            assert span.outputs == {"output": f"{output} {index}"}


def test_traces_are_capped_per_version_worst_first(sqlite_store: Path) -> None:
    uri = f"sqlite:///{sqlite_store}/capped.db"
    evaluations = four_kinds_of_change()
    worst = evaluations[0].examples[2]
    worst.candidate_scores = {"bleu": 0.0}  # the biggest drop of the three
    info = log_gate_run(
        gate_report(evaluations), evaluations, MlflowConfig(tracking_uri=uri, traces=1)
    )
    assert info.warning is None and info.experiment_id is not None and info.run_id is not None
    client = MlflowClient(tracking_uri=uri)
    candidate = next(
        run
        for run in child_runs(client, info.experiment_id, info.run_id)
        if run.data.tags["promptgate.prompt"] == "prompts/summarize.txt"
        and run.data.tags["promptgate.version"] == "candidate"
    )
    (trace,) = client.search_traces(locations=[info.experiment_id], run_id=candidate.info.run_id)
    assert trace.info.tags["promptgate.example"] == worst.id
    off = log_gate_run(
        gate_report(evaluations), evaluations, MlflowConfig(tracking_uri=uri, traces=0)
    )
    assert off.experiment_id is not None
    assert len(client.search_traces(locations=[off.experiment_id])) == 6  # one a child, first run


def test_a_run_is_linked_to_the_registered_version_holding_its_text(sqlite_store: Path) -> None:
    """The default branch's text is in the Prompt Registry (registry.py tags each version with
    its text's hash): the baseline run that ran it links to that version; the candidate's new
    text has no version yet, and links nothing."""
    uri = f"sqlite:///{sqlite_store}/linked.db"
    client = MlflowClient(tracking_uri=uri)
    registered = client.register_prompt(
        "prompts.summarize.txt", "baseline text", tags={"promptgate.prompt_hash": "b" * 12}
    )
    evaluations = four_kinds_of_change()
    info = log_gate_run(
        gate_report(evaluations), evaluations, MlflowConfig(tracking_uri=uri, traces=0)
    )
    assert info.warning is None and info.experiment_id is not None and info.run_id is not None
    runs = {
        (run.data.tags["promptgate.prompt"], run.data.tags["promptgate.version"]): run
        for run in child_runs(client, info.experiment_id, info.run_id)
    }
    baseline = client.get_run(runs[("prompts/summarize.txt", "baseline")].info.run_id)
    linked = json.loads(baseline.data.tags["mlflow.linkedPrompts"])
    assert linked == [{"name": "prompts.summarize.txt", "version": str(registered.version)}]
    candidate = client.get_run(runs[("prompts/summarize.txt", "candidate")].info.run_id)
    assert "mlflow.linkedPrompts" not in candidate.data.tags


def test_a_ui_url_gives_a_local_store_s_run_a_link(sqlite_store: Path) -> None:
    uri = f"sqlite:///{sqlite_store}/ui.db"
    evaluations = four_kinds_of_change()[:1]
    settings = MlflowConfig(tracking_uri=uri, ui_url="https://mlflow.example.com/", traces=0)
    info = log_gate_run(gate_report(evaluations), evaluations, settings)
    assert info.url == (
        f"https://mlflow.example.com/#/experiments/{info.experiment_id}/runs/{info.run_id}"
    )
    with pytest.raises(ValueError, match="is not an http"):
        MlflowConfig(ui_url="file:///tmp/mlflow")


def test_a_baseline_child_has_only_its_own_aggregates(logged: Logged) -> None:
    run = logged.children[("prompts/summarize.txt", "baseline")]
    assert run.data.params["prompt.hash"] == "b" * 12
    assert run.data.metrics == {"bleu": 40.0}


def test_a_renamed_prompt_baseline_is_logged_under_its_old_path(logged: Logged) -> None:
    run = logged.children[("prompts/new-name.txt", "baseline")]
    assert run.data.params["prompt.path"] == "prompts/old-name.txt"
    names = [a.path for a in logged.client.list_artifacts(run.info.run_id, "prompt")]
    assert names == ["prompt/old-name.txt"]


def test_prompt_text_diff_and_examples_are_artifacts(logged: Logged, tmp_path: Path) -> None:
    client = logged.client
    candidate = logged.children[("prompts/summarize.txt", "candidate")].info.run_id
    baseline = logged.children[("prompts/summarize.txt", "baseline")].info.run_id
    assert artifact_text(client, baseline, "prompt/summarize.txt", tmp_path / "b") == (
        "baseline text of prompts/summarize.txt"
    )
    assert artifact_text(client, candidate, "prompt/summarize.txt", tmp_path / "c") == (
        "candidate text of prompts/summarize.txt"
    )
    assert artifact_text(client, candidate, "prompt-diff.txt", tmp_path / "d") == DIFF
    table = json.loads(artifact_text(client, candidate, "examples.json", tmp_path / "t"))
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert rows[0]["id"] == "ex-0"
    assert rows[0]["baseline_output"] == "old output 0"
    assert rows[0]["candidate_output"] == "new output 0"
    assert rows[0]["delta_bleu"] == -10.0
    assert not [column for column in table["columns"] if "." in column]  # the UI blanks those
    tags = logged.children[("prompts/summarize.txt", "candidate")].data.tags
    assert "examples.json" in tags["mlflow.loggedArtifacts"]


def test_the_examples_table_reads_back_as_mlflow_log_table_would_have_written_it(
    logged: Logged,
) -> None:
    """The gate writes the table itself (mlflow-skinny has no pandas); MLflow's own reader and
    the UI's tag must see what `MlflowClient.log_table` would have logged."""
    import pandas as pd

    candidate = logged.children[("prompts/summarize.txt", "candidate")]
    read = logged.client.load_table(
        logged.info.experiment_id or "", "examples.json", run_ids=[candidate.info.run_id]
    )
    assert list(read["id"])[:2] == ["ex-0", "ex-1"] and read["delta_bleu"][0] == -10.0
    # The same rows through MLflow's own writer, in an experiment of their own.
    reference = logged.client.create_experiment("log_table reference")
    run_id = logged.client.create_run(reference).info.run_id
    logged.client.log_table(run_id, read.to_dict(orient="list"), "examples.json")
    expected = logged.client.load_table(reference, "examples.json", run_ids=[run_id])
    tag = logged.client.get_run(run_id).data.tags["mlflow.loggedArtifacts"]
    pd.testing.assert_frame_equal(read, expected)
    baseline = logged.children[("prompts/summarize.txt", "baseline")]
    assert candidate.data.tags["mlflow.loggedArtifacts"] == tag
    assert "examples.json" not in baseline.data.tags.get("mlflow.loggedArtifacts", "")


def test_added_and_deleted_prompts_log_the_side_they_have(logged: Logged, tmp_path: Path) -> None:
    added = logged.children[("prompts/added.txt", "candidate")]
    assert added.data.metrics["bleu"] == 35.0
    assert "bleu.delta" not in added.data.metrics
    deleted = logged.children[("prompts/deleted.txt", "baseline")]
    paths = {a.path for a in logged.client.list_artifacts(deleted.info.run_id)}
    assert {"prompt", "prompt-diff.txt", "examples.json"} <= paths
    text = artifact_text(logged.client, deleted.info.run_id, "prompt/deleted.txt", tmp_path)
    assert text == "baseline text of prompts/deleted.txt"


def test_the_gate_run_holds_the_report_with_its_mlflow_section(
    logged: Logged, tmp_path: Path
) -> None:
    text = artifact_text(logged.client, logged.info.run_id or "", "report.json", tmp_path)
    saved = Report.model_validate_json(text)
    assert saved.verdict == "fail"
    assert saved.mlflow.run_id == logged.info.run_id
    assert saved.mlflow.experiment_id == logged.info.experiment_id
    assert saved.mlflow.tracking_uri == logged.info.tracking_uri


def test_no_active_run_uri_setting_or_log_level_is_left_behind(logged: Logged) -> None:
    import mlflow
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    mlflow_logger = logging.getLogger("mlflow")
    level_before = mlflow_logger.level
    settings = MlflowConfig(tracking_uri=f"sqlite:///{logged.store}/mlflow.db")
    assert log_gate_run(gate_report([]), [], settings).warning is None
    assert mlflow.active_run() is None
    assert not is_tracking_uri_set()  # type: ignore[no-untyped-call]
    assert mlflow_logger.level == level_before
    for name in [*FAIL_FAST_HTTP_ENV, "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"]:
        assert name not in os.environ


# --- which store --------------------------------------------------------------------------


def test_the_environment_uri_wins_over_the_config(
    logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{logged.store}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    unreachable = MlflowConfig(tracking_uri=f"http://127.0.0.1:{closed_port()}")
    info = log_gate_run(gate_report([]), [], unreachable)
    assert info.warning is None
    assert info.tracking_uri == uri


def test_an_explicit_uri_wins_over_the_environment(
    logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{logged.store}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    info = log_gate_run(gate_report([]), [], MlflowConfig(), tracking_uri=uri)
    assert info.warning is None
    assert info.tracking_uri == uri
    assert os.environ["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")


def test_a_deleted_experiment_is_a_warning_that_says_what_to_do(logged: Logged) -> None:
    experiment_id = logged.client.create_experiment("retired")
    logged.client.delete_experiment(experiment_id)
    settings = MlflowConfig(
        tracking_uri=f"sqlite:///{logged.store}/mlflow.db", experiment="retired"
    )
    info = log_gate_run(gate_report([]), [], settings)
    assert info.warning is not None
    assert "experiment 'retired' is deleted" in info.warning
    assert "restore" in info.warning


# --- a store that cannot be reached -------------------------------------------------------


def test_an_unreachable_server_is_a_quick_warning_and_the_environment_is_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # the user's own setting survives
    uri = f"http://127.0.0.1:{closed_port()}"
    report = gate_report(four_kinds_of_change())
    started = time.monotonic()
    info = log_gate_run(report, four_kinds_of_change(), MlflowConfig(tracking_uri=uri))
    assert time.monotonic() - started < 5
    assert info.warning is not None
    assert uri in info.warning and "connection" in info.warning
    assert "verdict stands" in info.warning
    assert info.run_id is None
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_an_unreachable_required_store_stops_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(CouldNotEvaluate, match=r"mlflow\.required is true"):
        log_gate_run(gate_report([]), [], MlflowConfig(tracking_uri=uri, required=True))
    assert time.monotonic() - started < 5


def test_credentials_in_the_uri_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"http://user:s3cret@127.0.0.1:{closed_port()}"
    info = log_gate_run(gate_report([]), [], MlflowConfig(tracking_uri=uri))
    assert info.warning is not None
    assert "s3cret" not in info.warning
    assert "s3cret" not in (info.tracking_uri or "")


# --- a live tracking server ---------------------------------------------------------------


@pytest.mark.slow
def test_a_gate_run_logged_over_http_links_to_the_run(
    mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    print(f"mlflow server ready in {mlflow_server.startup_seconds:.1f} s")
    evaluations = four_kinds_of_change()[:1]
    started = time.monotonic()
    info = log_gate_run(
        gate_report(evaluations),
        evaluations,
        MlflowConfig(experiment="over-http"),
        tracking_uri=mlflow_server.uri,
    )
    logging_seconds = time.monotonic() - started
    assert info.warning is None, info.warning
    assert info.url == (
        f"{mlflow_server.uri}/#/experiments/{info.experiment_id}/runs/{info.run_id}"
    )
    assert "View run" not in capsys.readouterr().out  # MLflow's own link print is suppressed
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    parent = client.get_run(info.run_id or "")
    assert parent.data.tags["promptgate.verdict"] == "fail"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"report.json"}
    children = child_runs(client, info.experiment_id or "", parent.info.run_id)
    assert len(children) == 2
    stored = {p.name for p in mlflow_server.artifacts.rglob("*") if p.is_file()}
    assert {"report.json", "prompt-diff.txt", "examples.json", "summarize.txt"} <= stored
    with capsys.disabled():
        print(
            f"\n  mlflow server start {mlflow_server.startup_seconds:.1f} s, "
            f"gate logged over HTTP in {logging_seconds:.1f} s"
        )


def test_a_local_store_is_opened_in_the_background_and_logging_waits_for_it(
    tmp_path: Path,
) -> None:
    """A new sqlite store's tables are created while the calls run; log_gate_run joins that."""
    database = tmp_path / "deeper" / "mlflow.db"  # its directory is created too
    program = (
        "import sqlite3, sys\n"
        "from promptgate.config import MlflowConfig\n"
        "from promptgate import mlflow_store\n"
        f"uri = 'sqlite:///{database.as_posix()}'\n"
        "mlflow_store.prepare_in_background(MlflowConfig(), uri)\n"
        "thread = mlflow_store._preparing[uri]\n"
        "mlflow_store.wait_for_preparation(uri)  # what log_gate_run does first\n"
        f"tables = sqlite3.connect({str(database)!r}).execute(\n"
        "    \"SELECT name FROM sqlite_master WHERE type = 'table'\").fetchall()\n"
        "print(thread.is_alive(), uri in mlflow_store._preparing, ('alembic_version',) in tables,\n"
        "      ('runs',) in tables)\n"
    )
    assert python_stdout(program).split() == ["False", "False", "True", "True"]


def test_for_a_tracking_server_only_mlflow_is_imported_in_the_background() -> None:
    program = (
        "import sys, threading\n"
        "from promptgate.config import MlflowConfig\n"
        "from promptgate.mlflow_store import SQL_STORE_MODULE, prepare_in_background\n"
        "prepare_in_background(MlflowConfig(), 'http://127.0.0.1:5000')\n"
        "for thread in threading.enumerate():\n"
        "    if thread.name.startswith('promptgate-import-'):\n"
        "        thread.join(120)\n"
        "print('mlflow' in sys.modules, SQL_STORE_MODULE in sys.modules)\n"
    )
    assert python_stdout(program).split() == ["True", "False"]
