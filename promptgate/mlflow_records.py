"""Each example a prompt version answered, as an MLflow trace of that version's run: its inputs,
its output, and its scores as assessments. MLflow 3's "Evaluation runs" page lists a run with
traces as an evaluation, and comparing the baseline's run with the candidate's pairs the two
answers to each example side by side.

The traces are written as entities straight to the store the gate logs to (a trace's info with
its assessments, then every span in one batch): MLflow's tracing API would export through its
process-wide tracer to the process-wide tracking URI, and in the background. About 11 ms a trace
on a local SQLite store, so `mlflow.traces` caps them per version, worst examples first.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from promptgate.evaluation import ExampleResult

if TYPE_CHECKING:
    from mlflow.entities import TraceInfo
    from mlflow.entities.span import Span

SOURCE_ID = "promptgate"
PREVIEW_CHARS = 1000


def log_example_traces(
    uri: str,
    experiment_id: str,
    run_id: str,
    name: str,
    version: str,
    examples: Sequence[ExampleResult],
) -> int:
    """One trace per example of `version`, linked to `run_id`; returns how many."""
    from mlflow.tracing.client import TracingClient

    client = TracingClient(uri)
    spans = []
    for example in examples:
        info, span = _trace(experiment_id, run_id, name, version, example)
        client.start_trace(info)
        spans.append(span)
    if spans:
        client.log_spans(experiment_id, spans)
    return len(spans)


def _trace(
    experiment_id: str, run_id: str, name: str, version: str, example: ExampleResult
) -> tuple[TraceInfo, Span]:
    from mlflow.entities import (
        AssessmentSource,
        Feedback,
        TraceInfo,
        TraceLocation,
        TraceState,
    )
    from mlflow.entities.span import Span

    outputs_list = example.baseline_outputs if version == "baseline" else example.candidate_outputs
    scores = example.baseline_scores if version == "baseline" else example.candidate_scores
    refusal = example.baseline_refusal if version == "baseline" else example.candidate_refusal
    inputs: dict[str, Any] = {"example": example.id, **example.inputs}
    outputs: dict[str, Any] = {"output": (outputs_list or [""])[0]}
    if outputs_list and len(outputs_list) > 1:
        outputs["samples"] = outputs_list
    if refusal:
        outputs["refusal"] = refusal
    raw_trace, raw_span = secrets.token_bytes(16), secrets.token_bytes(8)
    trace_id = f"tr-{raw_trace.hex()}"
    now_ns = time.time_ns()
    source = AssessmentSource(source_type="CODE", source_id=SOURCE_ID)
    request, response = _json(inputs), _json(outputs)
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=now_ns // 1_000_000,
        state=TraceState.OK,
        request_preview=request[:PREVIEW_CHARS],
        response_preview=response[:PREVIEW_CHARS],
        execution_duration=0,
        trace_metadata={
            "mlflow.sourceRun": run_id,
            "mlflow.trace_schema.version": "3",
            "mlflow.traceInputs": request[:PREVIEW_CHARS],
            "mlflow.traceOutputs": response[:PREVIEW_CHARS],
        },
        tags={
            "mlflow.traceName": name,
            "promptgate.example": example.id[:250],
            "promptgate.version": version,
        },
        assessments=[
            Feedback(name=metric, value=float(score), source=source, trace_id=trace_id)
            for metric, score in scores.items()
        ],
    )
    span = Span.from_dict(
        {
            "trace_id": _b64(raw_trace),
            "span_id": _b64(raw_span),
            "parent_span_id": None,
            "name": name,
            "start_time_unix_nano": now_ns,
            "end_time_unix_nano": now_ns,
            "events": [],
            "status": {"code": "STATUS_CODE_OK", "message": ""},
            "attributes": {
                "mlflow.experimentId": _json(experiment_id),
                "mlflow.traceRequestId": _json(trace_id),
                "mlflow.spanType": _json("LLM"),
                "mlflow.spanInputs": request,
                "mlflow.spanOutputs": response,
            },
            "links": [],
        }
    )
    return info, span


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
