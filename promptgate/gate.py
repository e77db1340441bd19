"""The gate, end to end: GateRequest -> changes -> plan -> calls -> scores -> verdict -> Report."""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from promptgate.changes import GitRange, all_prompts, changed_prompts, open_repo, resolve_range
from promptgate.config import Config
from promptgate.dataset import Example
from promptgate.error_control import control_pr_errors
from promptgate.errors import BadInput, ExitCode
from promptgate.evaluation import (
    ExampleResult,
    GenerationSettings,
    PromptEvaluation,
    worst_first,
)
from promptgate.gate_config import GateConfig, load_gate_config
from promptgate.generation import Generation, ProgressStart, plan_slots
from promptgate.mlflow_store import local_state_dir, prepare_in_background, resolve_tracking_uri
from promptgate.notes import run_notes
from promptgate.plan import ExampleSubset, PromptPlan, plan_prompt
from promptgate.providers import import_client_in_background
from promptgate.providers.base import ChatRequest
from promptgate.report.format import dataset_change_counts
from promptgate.report.model import (
    ExampleChange,
    GateInfo,
    GitSide,
    PartialRun,
    PromptReport,
    PromptVerdict,
    Report,
    SamplingRound,
    Side,
    Verdict,
)
from promptgate.request import GateRequest
from promptgate.scoring import Scorer, Slot
from promptgate.sequential import gate_rule, is_undecided, with_look
from promptgate.tracking import log_gate_run
from promptgate.usage import usage_of, usage_reasons
from promptgate.worktree import work_tree_side


@dataclass
class GateResult:
    report: Report
    evaluations: list[PromptEvaluation]
    config: Config  # the governing config (its mlflow section is where the run is logged)
    tracking_uri: str  # where the run is logged: request, environment, config, default

    @property
    def exit_code(self) -> ExitCode:
        override = self.report.override
        if self.report.verdict == "fail" and override is not None and override.accepted:
            return ExitCode.PASSED  # accepted on record; the verdict itself stays "fail"
        return exit_code_for(self.report.verdict)


def exit_code_for(verdict: Verdict) -> ExitCode:
    return {"pass": ExitCode.PASSED, "fail": ExitCode.FAILED}.get(
        verdict, ExitCode.COULD_NOT_EVALUATE
    )


def publish(result: GateResult, request: GateRequest) -> None:
    """Log the run to MLflow, then write the report files with where it was logged."""
    info = log_gate_run(
        result.report,
        result.evaluations,
        result.config.mlflow,
        tracking_uri=result.tracking_uri,
        tags=request.tags,
    )
    result.report = result.report.model_copy(update={"mlflow": info})
    write_reports(result.report, request)


@dataclass
class Planned:
    """Everything decided before the first call: the range, the governing config, the plans."""

    repo_root: Path
    rng: GitRange
    gate_config: GateConfig
    plans: list[PromptPlan]


def plan_request(request: GateRequest) -> Planned:
    """The request's range, config and one plan per prompt to judge (all prompts with `--all`)."""
    repo = open_repo(request.repo)
    repo_root = Path(repo.working_tree_dir or request.repo)
    rng = resolve_range(repo, request.base, request.head)
    gate_config = load_gate_config(rng, request.config_path, repo_root)
    rng, gate_config = work_tree_side(rng, gate_config, request, repo_root)
    config = gate_config.config
    import_client_in_background(config.provider)
    specs = list(config.prompts)
    changes = all_prompts(rng, specs) if request.all_prompts else changed_prompts(rng, specs)
    subset = ExampleSubset(request.limit, frozenset(request.example_ids))
    plans = [plan_prompt(rng, change, config, gate_config.path, subset) for change in changes]
    _check_example_ids(request.example_ids, plans)
    return Planned(repo_root, rng, gate_config, plans)


def _check_example_ids(ids: Sequence[str], plans: Sequence[PromptPlan]) -> None:
    """`--examples` names ids that some judged prompt's eval set has: a typo is not a pass."""
    judged = {example.id for plan in plans for example in plan.examples}
    missing = [i for i in ids if i not in judged]
    if missing and plans:
        raise BadInput(
            f"--examples: no judged prompt's eval set has the id(s) {', '.join(missing[:5])}; "
            "an example's id is its `id` field (its line number when it has none)"
        )


def evaluate(
    request: GateRequest, *, progress: ProgressStart | None = None, publishing: bool = False
) -> GateResult:
    """The verdict and report. `publishing`: the caller will `publish` the result, so MLflow is
    imported (and a local store opened) while the calls run: 1.5-5 s that would otherwise follow
    the verdict."""
    planned = plan_request(request)
    rng, gate_config, plans = planned.rng, planned.gate_config, planned.plans
    config = gate_config.config

    tracking_uri = resolve_tracking_uri(
        config.mlflow,
        request.mlflow_tracking_uri,
        local_dir=request.state_dir or local_state_dir(planned.repo_root),
    )

    def prepare_tracking() -> None:
        prepare_in_background(config.mlflow, tracking_uri)

    with Generation(
        plans,
        config,
        request,
        planned.repo_root,
        progress,
        prepare_tracking if publishing else None,
    ) as generation:
        evaluations, tests, rounds = _judge_in_rounds(generation, plans, config)
    calls, failures, scorer = generation.stats, generation.failures, generation.scorer
    partial = _partial(request, plans)
    report = Report(
        verdict=overall_verdict([e.report.verdict for e in evaluations]),
        base=GitSide(ref=rng.base_ref, sha=rng.base_sha),
        head=GitSide(
            ref=rng.head_ref,
            sha=rng.shown_head_sha,
            uncommitted=list(rng.uncommitted) if rng.work_tree_on else None,
        ),
        config_changed=gate_config.changed,
        config_changes=gate_config.changes,
        prompts=[e.report for e in evaluations],
        calls=calls,
        usage=usage_of(
            (a for plan in plans for answers in plan.answers.values() for a in answers),
            config.provider.price,
        )
        if any(plan.answers for plan in plans)
        else None,
        gate=_gate_info(gate_config, scorer.signatures() if scorer else {}, tests, rounds),
        errors=failures,
        warnings=generation.warnings,
        pr_number=request.pr_number,
        notes=run_notes(rng, request, partial),
        partial=partial,
    )
    return GateResult(report, evaluations, config, tracking_uri)


def _partial(request: GateRequest, plans: Sequence[PromptPlan]) -> PartialRun | None:
    if not request.partial:
        return None
    return PartialRun(
        limit=request.limit,
        example_ids=list(request.example_ids),
        examples=sum(len(plan.examples) for plan in plans),
        of=sum(plan.examples_total for plan in plans),
    )


def overall_verdict(prompt_verdicts: Sequence[PromptVerdict]) -> Verdict:
    if "error" in prompt_verdicts:
        return "error"
    return "fail" if "fail" in prompt_verdicts else "pass"


def _judge_in_rounds(
    generation: Generation, plans: list[PromptPlan], config: Config
) -> tuple[list[PromptEvaluation], int, int]:
    """Every plan's calls, judged and settled for the PR; then, under samples: auto, another
    round for each prompt that wants one (sequential.py), until none does. Returns the
    evaluations, the number of tests and the number of rounds."""
    generation.run(plan_slots(plans))
    evaluations = [
        _judge(plan, index, generation.scorer, config) for index, plan in enumerate(plans)
    ]
    tests = _settle_verdicts([e.report for e in evaluations], config)
    rounds = 1
    _record_round(evaluations, plans, range(len(plans)), config)
    while more := [i for i, e in enumerate(evaluations) if _wants_more(plans[i], e, config)]:
        generation.run([Slot(i, *position) for i in more for position in plans[i].add_sample()])
        for i in more:
            evaluations[i] = _judge(plans[i], i, generation.scorer, config, evaluations[i])
        tests = _settle_verdicts([e.report for e in evaluations], config)
        rounds += 1
        _record_round(evaluations, plans, more, config)
    return evaluations, tests, rounds


def _wants_more(plan: PromptPlan, evaluation: PromptEvaluation, config: Config) -> bool:
    """Under samples: auto, whether the prompt gets another round (sequential.py)."""
    report = evaluation.report
    return (
        config.gate.adaptive
        and plan.sampled
        and 0 < plan.samples < config.gate.max_samples
        and report.verdict in ("pass", "new")
        and any(is_undecided(result) for result in report.metrics.values())
    )


def _record_round(
    evaluations: list[PromptEvaluation],
    plans: list[PromptPlan],
    judged: Iterable[int],
    config: Config,
) -> None:
    """Under samples: auto, the round each judged prompt just had, and what it left undecided."""
    if not config.gate.adaptive:
        return
    for index in judged:
        plan, report = plans[index], evaluations[index].report
        if plan.examples and plan.sampled:
            report.rounds.append(
                SamplingRound(
                    samples=plan.samples,
                    requests=len(plan.sides()) * len(plan.examples),
                    undecided=[n for n, r in report.metrics.items() if is_undecided(r)],
                )
            )


def _judge(
    plan: PromptPlan,
    plan_index: int,
    scorer: Scorer | None,
    config: Config,
    previous: PromptEvaluation | None = None,
) -> PromptEvaluation:
    """The prompt's figures from every answer it has; `previous`: its evaluation at the last
    round (adaptive sampling), whose looks and rounds it continues."""
    change = plan.change
    report = PromptReport(
        path=change.path,
        old_path=change.old_path,
        change=change.change,
        dataset=plan.dataset_path,
        dataset_changed=plan.dataset_changed,
        dataset_diff=plan.dataset_diff,
        verdict="removed" if change.change == "deleted" else "pass",
        examples=len(plan.examples),
        baseline_hash=plan.baseline.hash if plan.baseline else None,
        candidate_hash=plan.candidate.hash if plan.candidate else None,
        model=plan.model_of("candidate" if plan.candidate else "baseline", config),
        diff=_unified_diff(plan),
        samples=plan.samples or None,
        rounds=list(previous.report.rounds) if previous else [],
        usage={
            side: usage_of(answers, config.provider.price) for side, answers in plan.answers.items()
        },
    )
    evaluation = PromptEvaluation(
        report=report,
        baseline_text=plan.baseline.text if plan.baseline else None,
        candidate_text=plan.candidate.text if plan.candidate else None,
        generation={side: _settings(plan.requests[side]) for side in plan.sides() if plan.examples},
    )
    if change.change == "deleted":
        return evaluation
    failed = [
        index
        for index in range(len(plan.examples))
        if any(o is None for side in plan.sides() for o in plan.outputs[side][index])
    ]
    allowed = config.gate.max_failed_share * len(plan.examples)
    if len(failed) > allowed:
        report.verdict = "error"
        report.error = (
            f"{len(failed)} of {len(plan.examples)} examples had a generation given up after "
            f"retries (gate.max_failed_share allows {int(allowed)}); nothing was scored"
        )
        return evaluation
    report.failed_examples = [plan.examples[index].id for index in failed]
    left_out = set(failed)
    kept = [index for index in range(len(plan.examples)) if index not in left_out]
    examples = [plan.examples[index] for index in kept]
    report.examples = len(examples)

    assert scorer is not None  # a plan with examples had calls, so the scorer exists
    comparison = scorer.compare(
        {side: scorer.side_rows(plan_index, side, kept, plan.samples) for side in plan.sides()},
        config.gate,
    )
    report.metrics = comparison.results
    if config.gate.adaptive and plan.sampled:
        earlier = previous.report.metrics if previous else {}
        report.metrics = {
            name: with_look(result, earlier.get(name), plan.samples, config.gate.max_samples)
            for name, result in report.metrics.items()
        }
    report.signatures = scorer.plan_signatures(plan_index)
    report.notes = scorer.plan_notes(plan_index)
    # Every kept output is present; one list per side, built once.
    texts = {
        side: [[t or "" for t in plan.outputs[side][i]] for i in kept] for side in plan.sides()
    }
    evaluation.examples = _example_results(
        examples, texts, comparison.per_example, plan.refusals, kept
    )
    report.top_regressions = _top_regressions(evaluation.examples, config)
    report.refused_examples = {
        example.id: refusals for example in evaluation.examples if (refusals := example.refusals())
    }
    return evaluation


def _settle_verdicts(prompts: list[PromptReport], config: Config) -> int:
    """Decide every metric of the PR together (error_control.py), then each judged prompt's
    verdict from its metrics and the eval-set rule; the number of tests."""
    tests = control_pr_errors(prompts, config.gate.error_rate)
    for report in prompts:
        if report.verdict in ("error", "removed"):
            continue
        failed_metric = any(result.status == "fail" for result in report.metrics.values())
        if report.change == "added":
            report.verdict = "fail" if failed_metric else "new"
        else:
            report.verdict = "fail" if failed_metric else "pass"
        if report.dataset_diff is not None and config.gate.on_dataset_change == "fail":
            report.verdict = "fail"
            label = config.gate.override_label
            accept = f"; once it is reviewed, accept it with the label '{label}'" if label else ""
            report.reason = (
                f"the eval set changed in this PR ({dataset_change_counts(report.dataset_diff)}) "
                f"and the base config sets gate.on_dataset_change: fail{accept}"
            )
        if costlier := usage_reasons(report.usage, config.gate):
            report.verdict = "fail"
            report.reason = "; ".join([*([report.reason] if report.reason else []), *costlier])
    return tests


def _settings(requests: list[list[ChatRequest]]) -> GenerationSettings:
    first = requests[0][0]  # every request of one side shares model and parameters
    return GenerationSettings(
        model=first.model, temperature=first.temperature, max_tokens=first.max_tokens
    )


def _example_results(
    examples: list[Example],
    texts: dict[Side, list[list[str]]],
    scores: dict[Side, dict[str, list[float]]],
    refusals: dict[Side, dict[int, str]],
    kept: list[int],
) -> list[ExampleResult]:
    """`refusals` are by example index in the plan; `kept[i]` is example i's index there."""
    results = []
    for index, example in enumerate(examples):
        outputs = {side: texts[side][index] for side in texts}
        results.append(
            ExampleResult(
                id=example.id,
                expected=example.expected,
                inputs=dict(example.vars),
                baseline_outputs=outputs.get("baseline"),
                candidate_outputs=outputs.get("candidate"),
                baseline_scores={n: float(v[index]) for n, v in scores.get("baseline", {}).items()},
                candidate_scores={n: float(v[index]) for n, v in scores["candidate"].items()},
                baseline_refusal=refusals.get("baseline", {}).get(kept[index]),
                candidate_refusal=refusals.get("candidate", {}).get(kept[index]),
            )
        )
    return results


def _top_regressions(examples: list[ExampleResult], config: Config) -> list[ExampleChange]:
    """Examples ranked by their drop, each metric's delta in units of its max_drop."""

    thresholds = {name: metric.max_drop for name, metric in config.metrics.items()}
    regressed = [e for e in worst_first(examples, thresholds) if e.drop(thresholds) < 0]
    return [
        ExampleChange(
            id=e.id,
            baseline_output=e.baseline_outputs[0] if e.baseline_outputs else None,
            candidate_output=e.candidate_outputs[0] if e.candidate_outputs else None,
            **e.deltas(),
        )
        for e in regressed[: config.gate.top_regressions]
    ]


def _unified_diff(plan: PromptPlan) -> str | None:
    old = plan.baseline.text if plan.baseline else ""
    new = plan.candidate.text if plan.candidate else ""
    if old == new:
        return None
    old_name = plan.change.old_path or plan.change.path
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{old_name}" if plan.baseline else "/dev/null",
        tofile=f"b/{plan.change.path}" if plan.candidate else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _gate_info(
    gate_config: GateConfig, signatures: dict[str, str], tests: int, rounds: int
) -> GateInfo:
    config = gate_config.config
    adaptive = config.gate.adaptive
    return GateInfo(
        rule=gate_rule(adaptive),
        confidence=config.gate.confidence,
        error_rate=config.gate.error_rate,
        tests=tests,
        samples=config.gate.first_samples,
        adaptive=adaptive,
        max_samples=config.gate.max_samples if adaptive else None,
        rounds=rounds,
        bootstrap_resamples=config.gate.bootstrap_resamples,
        seed=config.gate.seed,
        config_path=gate_config.path,
        config_source=gate_config.source,
        config_hash=config.gate_settings_hash(),
        provider=config.provider.kind,
        model=config.provider.model,
        signatures=signatures,
        on_dataset_change=config.gate.on_dataset_change,
    )


def write_reports(report: Report, request: GateRequest) -> None:
    from promptgate.report.markdown import render_markdown

    if request.report_json:
        write_atomically(request.report_json, report.model_dump_json(indent=2) + "\n")
    if request.report_md:
        write_atomically(request.report_md, render_markdown(report))


def write_atomically(path: Path, text: str) -> None:
    """Write via a temp file and rename, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def error_report(request: GateRequest, error: BaseException) -> Report:
    """The report of a run that could not finish: verdict error, the reason, nothing else."""
    return Report(
        verdict="error",
        base=GitSide(ref=request.base or "", sha=""),
        head=GitSide(ref=request.head or "HEAD", sha=""),
        errors=[str(error)],
        pr_number=request.pr_number,
    )
