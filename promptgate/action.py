"""The GitHub Action: event -> GateRequest -> gate -> comment, summary, outputs, exit code.

entrypoint.py only calls `main(os.environ)`; everything here runs in tests without GitHub.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO, cast

from rich.console import Console

from promptgate.errors import BadInput, ExitCode, GateError
from promptgate.gate import GateResult, error_report, evaluate, publish, write_reports
from promptgate.github.event import (
    ActionInputs,
    EventContext,
    new_ref_base,
    read_event,
    read_inputs,
)
from promptgate.github.workflow import WorkflowCommands, append_summary, write_outputs
from promptgate.interrupt import terminate_as_interrupt
from promptgate.masking import on_secret
from promptgate.report.markdown import render_markdown
from promptgate.report.model import Override, Report
from promptgate.report.terminal import print_summary
from promptgate.request import GateRequest
from promptgate.trust import reclaim_state_dir, untrusted_reason

COMMENT_LIMIT = 65_000  # GitHub's limit is 65,536 characters; keep a margin
# The runner drops a step's whole summary file when it is over 1 MiB (1,048,576 bytes, counted
# as bytes: CJK text is 3 a character); what the step appended before counts. Keep a margin.
SUMMARY_LIMIT = 1_040_000
REPORT_DIR = ".promptgate"
SECRET_ENV_VARS = ("OPENAI_API_KEY", "GITHUB_TOKEN", "GH_TOKEN")
#: Directories promptgate reads back from, named by the workflow (trusted), checked all the same
STATE_ENV_VARS = ("PROMPTGATE_CACHE_DIR", "PROMPTGATE_MODEL_CACHE")


def main(env: Mapping[str, str], out: TextIO = sys.stdout) -> int:
    """Run the action; a bug is exit 3 with its traceback, never a pass or a "gate failed"."""
    commands = WorkflowCommands(out)
    with _one_inert_log(commands, own_process=out is sys.stdout):
        try:
            with terminate_as_interrupt():
                return _run(env, commands)
        except KeyboardInterrupt:  # the job was cancelled: answers received so far are cached
            commands.error("promptgate was interrupted; nothing judged", title="promptgate")
            return int(ExitCode.COULD_NOT_EVALUATE)
        except Exception:
            commands.out.write(traceback.format_exc())
            commands.error(
                "internal error in promptgate (a bug; please report it)", title="promptgate"
            )
            return int(ExitCode.COULD_NOT_EVALUATE)
        finally:
            commands.resume_commands()


@contextmanager
def _one_inert_log(commands: WorkflowCommands, *, own_process: bool) -> Iterator[None]:
    """In the container, everything the process prints goes through `commands.out`, so each
    line is inert for the runner (github/workflow.py `InertLines`), and stderr joins stdout at
    the file descriptor, so the runner reads one stream in the order it was written (text a
    child process prints included)."""
    if not own_process:
        yield
        return
    saved = sys.stdout, sys.stderr
    for stream in saved:
        stream.flush()
    saved_stderr_fd = os.dup(2)
    os.dup2(saved[0].fileno(), 2)
    sys.stdout = sys.stderr = commands.out
    try:
        yield
    finally:
        commands.out.flush()
        sys.stdout, sys.stderr = saved
        os.dup2(saved_stderr_fd, 2)
        os.close(saved_stderr_fd)


def _run(env: Mapping[str, str], commands: WorkflowCommands) -> int:
    try:
        inputs = read_inputs(env)
    except GateError as exc:
        commands.error(str(exc), title="promptgate")
        return int(exc.exit_code)
    for secret in [inputs.github_token, *(env.get(name, "") for name in SECRET_ENV_VARS)]:
        commands.mask(secret)
    commands.stop_commands()  # from here on no text from the PR can be a workflow command
    stop_masking = on_secret(commands.mask)  # the config's keys and header secrets, once known
    try:
        return _gate(env, commands, inputs)
    finally:
        stop_masking()


def _gate(env: Mapping[str, str], commands: WorkflowCommands, inputs: ActionInputs) -> int:
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".")
    trust_workspace(workspace)
    try:
        _claim_state(workspace, env, commands)
    except GateError as exc:
        commands.error(str(exc), title="promptgate")
        return int(exc.exit_code)

    report_json = workspace / REPORT_DIR / "report.json"
    report_md = workspace / REPORT_DIR / "report.md"
    try:
        event = new_ref_base(read_event(env, inputs), workspace)
        if event.nothing_to_judge:  # a deleted ref, a history with no earlier commit
            commands.notice(event.nothing_to_judge, title="promptgate")
            return int(ExitCode.PASSED)
        request = _gate_request(workspace, inputs, event, report_json, report_md)
    except GateError as exc:
        commands.error(str(exc), title="promptgate")
        return int(exc.exit_code)

    if inputs.shard:
        return _shard(request, inputs.shard, workspace, env, commands)
    if inputs.merge:
        try:
            request = _merged(request, inputs.merge, workspace)
        except GateError as exc:
            commands.error(str(exc), title="promptgate: merge")
            return int(exc.exit_code)

    with commands.group("promptgate: evaluating prompt changes"):
        report, code = _evaluate(request, commands, event, env, inputs)
    print_summary(report, Console(file=cast(TextIO, commands.out), width=120, color_system=None))

    _annotate(report, commands)
    summary_path = env.get("GITHUB_STEP_SUMMARY")
    if summary_path and not append_summary(
        Path(summary_path),
        lambda room: render_markdown(report, max_bytes=room, alerts=False),
        max_bytes=SUMMARY_LIMIT,
    ):
        commands.warning(
            "the job summary had no room left for the report (the runner takes 1 MiB a step); "
            f"it is in {REPORT_DIR}/report.md"
        )
    comment_url = _comment(report, inputs, event, env, commands)
    output_path = env.get("GITHUB_OUTPUT")
    if output_path:
        write_outputs(
            Path(output_path),
            {
                "verdict": report.verdict,
                "report-path": report_json.relative_to(workspace).as_posix(),
                "mlflow-run-id": report.mlflow.run_id or "",
                "comment-url": comment_url or "",
                "regression-accepted-by": (
                    report.override.actor or ""
                    if report.override and report.override.accepted
                    else ""
                ),
            },
        )
    if code == ExitCode.FAILED and not inputs.fail_on_regression:
        commands.warning("the gate failed, but fail-on-regression is false: the step passes")
        return int(ExitCode.PASSED)
    return code


def _shard(
    request: GateRequest,
    shard_text: str,
    workspace: Path,
    env: Mapping[str, str],
    commands: WorkflowCommands,
) -> int:
    """A matrix job's slice: its answers and manifest in .promptgate/shard, for the merge job."""
    from promptgate.shard import parse_shard, run_shard

    directory = workspace / REPORT_DIR / "shard"
    try:
        with commands.group(f"promptgate: shard {shard_text}"):
            manifest = run_shard(request, parse_shard(shard_text), directory)
    except GateError as exc:
        commands.error(str(exc), title="promptgate: shard")
        return int(exc.exit_code)
    commands.out.write(
        f"shard {manifest.shard.index}/{manifest.shard.count}: {manifest.pairs} of "
        f"{manifest.total_pairs} (prompt, example) pairs, {manifest.calls.made} calls made\n"
    )
    output_path = env.get("GITHUB_OUTPUT")
    if output_path:
        write_outputs(Path(output_path), {"shard-dir": directory.relative_to(workspace).as_posix()})
    return int(ExitCode.PASSED)


def _merged(request: GateRequest, pattern: str, workspace: Path) -> GateRequest:
    from promptgate.shard import merged_request

    directories = sorted(path for path in workspace.glob(pattern) if path.is_dir())
    if not directories:
        raise BadInput(
            f"no shard directory matches {pattern!r} in the workspace; download the shard "
            "jobs' artifacts there first",
            file="merge",
        )
    return merged_request(directories, request)


def _evaluate(
    request: GateRequest,
    commands: WorkflowCommands,
    event: EventContext,
    env: Mapping[str, str],
    inputs: ActionInputs,
) -> tuple[Report, int]:
    """The gate's report and exit code; bad input still yields a report to show on the PR."""
    try:
        result = evaluate(request, publishing=True)
        _review_override(result, inputs, event, env, commands)
        publish(result, request)
    except GateError as exc:
        commands.error(str(exc), title="promptgate")
        report = error_report(request, exc)
        write_reports(report, request)
        return report, int(exc.exit_code)
    return result.report, _register_merged_prompts(result, request, event, env, commands)


def _review_override(
    result: GateResult,
    inputs: ActionInputs,
    event: EventContext,
    env: Mapping[str, str],
    commands: WorkflowCommands,
) -> None:
    """A failed PR that carries the override label: ask GitHub whether it accepts the regression
    (promptgate/github/override.py), and put the answer on the report before it is published."""
    label = result.config.gate.override_label
    if result.report.verdict != "fail" or not label or event.pr_number is None:
        return
    if not event.is_pull_request:  # a merge queue asks GitHub nothing
        return
    if label not in event.labels:
        return
    if not inputs.github_token:
        override = Override(
            label=label, accepted=False, reason="no github-token to ask who added the label"
        )
    else:
        from promptgate.github.api import GitHubClient
        from promptgate.github.override import decide_override

        api_url = env.get("GITHUB_API_URL") or "https://api.github.com"
        with GitHubClient(inputs.github_token, api_url) as client:
            override = decide_override(client, event.repository, event.pr_number, label)
    result.report = result.report.model_copy(update={"override": override})
    if override.accepted:
        commands.warning(
            f"regression accepted by @{override.actor} ({override.permission} access) with the "
            f"label '{label}': the verdict stays fail, the step passes",
            title="promptgate: override",
        )
    else:
        commands.warning(
            f"the label '{label}' was not honoured: {override.reason}", title="promptgate: override"
        )


def _register_merged_prompts(
    result: GateResult,
    request: GateRequest,
    event: EventContext,
    env: Mapping[str, str],
    commands: WorkflowCommands,
) -> int:
    """On a push to the default branch, record the merged prompts in MLflow's Prompt Registry
    (README "Prompt Registry"). The gate's exit code, or 3 when a required registry failed."""
    if not event.pushed_default_branch:
        return int(result.exit_code)
    from promptgate.registry.register import register_merged_prompts

    try:
        outcome = register_merged_prompts(
            result,
            repo=request.repo,
            tracking_uri=result.tracking_uri,
            repository=event.repository,
        )
    except GateError as exc:
        commands.error(str(exc), title="promptgate: prompt registry")
        return int(exc.exit_code)
    for line in outcome.lines():
        commands.out.write(f"prompt registry: {line}\n")
    if outcome.warning:
        commands.warning(outcome.warning, title="promptgate: prompt registry")
    summary_path = env.get("GITHUB_STEP_SUMMARY")
    if summary_path and outcome.prompts:
        append_summary(Path(summary_path), outcome.summary_markdown())
    return int(result.exit_code)


def _claim_state(workspace: Path, env: Mapping[str, str], commands: WorkflowCommands) -> None:
    """Make what promptgate reads back and writes in the workspace its own: `.promptgate/` holds
    nothing from the PR (promptgate/trust.py), and a cache directory the workflow names in the
    workspace is not one the PR's checkout holds."""
    removed = reclaim_state_dir(workspace)
    if removed:
        commands.warning(removed, title="promptgate: untrusted state")
    for variable in STATE_ENV_VARS:
        value = env.get(variable, "").strip()
        if not value:
            continue
        path = Path(value).expanduser()
        problem = untrusted_reason(path if path.is_absolute() else workspace / path, root=workspace)
        if problem:
            raise BadInput(
                f"{variable} points at {value}, which the PR's checkout holds ({problem}); a "
                f"PR could put forged files there. Point it under {REPORT_DIR}/ or outside "
                "the workspace",
                file=variable,
            )


def trust_workspace(workspace: Path) -> None:
    """Let git work on a checkout owned by another uid (the runner's), as a container sees it.

    Set as command-scope config through the environment, so no global file is written.
    """
    count = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    os.environ[f"GIT_CONFIG_KEY_{count}"] = "safe.directory"
    os.environ[f"GIT_CONFIG_VALUE_{count}"] = str(workspace.resolve())
    os.environ["GIT_CONFIG_COUNT"] = str(count + 1)


def _gate_request(
    workspace: Path, inputs: ActionInputs, event: EventContext, report_json: Path, report_md: Path
) -> GateRequest:
    tags = {
        "promptgate.event": event.event_name,
        "promptgate.repository": event.repository,
        "promptgate.actor": event.actor,
        "promptgate.pr_title": event.pr_title[:500],  # the why, in the author's words
        "promptgate.pr_url": event.pr_url,
    }
    if event.run_url:
        tags["promptgate.run_url"] = event.run_url
    return GateRequest(
        repo=workspace,
        base=event.base,
        head=event.head,
        config_path=inputs.config,
        all_prompts=event.all_prompts or inputs.all,
        report_json=report_json,
        report_md=report_md,
        mlflow_tracking_uri=inputs.mlflow_tracking_uri or None,
        pr_number=event.pr_number,
        tags={k: v for k, v in tags.items() if v},
        state_dir=workspace / REPORT_DIR,
    )


def _annotate(report: Report, commands: WorkflowCommands) -> None:
    for prompt in report.prompts:
        if prompt.verdict == "fail":
            reasons = "; ".join(
                f"{name}: {result.reason}"
                for name, result in prompt.metrics.items()
                if result.status == "fail"
            )
            commands.error(
                reasons or "regressed", file=prompt.path, title="promptgate: prompt regressed"
            )
        elif prompt.verdict == "error":
            commands.error(
                prompt.error or "could not be evaluated", file=prompt.path, title="promptgate"
            )


def _comment(
    report: Report,
    inputs: ActionInputs,
    event: EventContext,
    env: Mapping[str, str],
    commands: WorkflowCommands,
) -> str | None:
    """Create or update the PR's one promptgate comment; failure to post is a warning only."""
    if not (inputs.comment and event.is_pull_request and event.pr_number):
        return None
    if not inputs.github_token:
        commands.warning(
            "no github-token: the PR comment was not posted (the job summary has the report)"
        )
        return None
    from promptgate.github.api import GitHubClient, GitHubError
    from promptgate.github.comment import upsert_comment

    body = render_markdown(report, max_chars=COMMENT_LIMIT)
    api_url = env.get("GITHUB_API_URL") or "https://api.github.com"
    try:
        with GitHubClient(inputs.github_token, api_url) as client:
            result = upsert_comment(client, event.repository, event.pr_number, body)
    except (GitHubError, ValueError) as exc:  # ValueError: an argument GitHub would refuse
        commands.warning(
            f"the PR comment could not be posted: {exc}. The job summary has the full report."
        )
        return None
    return result.url
