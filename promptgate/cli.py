"""The command line: a thin layer that turns flags into a GateRequest and a verdict into an exit code."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from promptgate.errors import BadInput, ExitCode, GateError
from promptgate.report.escape import terminal
from promptgate.request import GateRequest

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="promptgate: judge a prompt change by running its eval set with the old and new prompt.",
)
INTERRUPTED = "promptgate: interrupted; the answers received so far are cached. Exit 3."
err = Console(stderr=True)
out = Console()


@app.command()
def run(
    repo: Annotated[Path, typer.Option(help="Repository to judge.")] = Path("."),
    base: Annotated[
        str | None, typer.Option(help="Base ref (default: origin/HEAD, else HEAD~1).")
    ] = None,
    head: Annotated[str | None, typer.Option(help="Head ref (default: HEAD).")] = None,
    config: Annotated[
        str, typer.Option(help="Config path, relative to the repo root.")
    ] = "promptgate.yaml",
    report_json: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    report_md: Annotated[Path | None, typer.Option(help="Write the Markdown report here.")] = None,
    all_prompts: Annotated[
        bool, typer.Option("--all", help="Evaluate every configured prompt, changed or not.")
    ] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write cached LLM outputs.")
    ] = False,
    cache_path: Annotated[
        Path | None, typer.Option(help="Cache file (default: <repo>/.promptgate/cache.sqlite3).")
    ] = None,
    mlflow_tracking_uri: Annotated[
        str | None, typer.Option(help="Overrides MLFLOW_TRACKING_URI and the config.")
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="i/n: make only the calls of slice i of n (a workflow matrix); "
            "`promptgate merge` then judges all slices at once."
        ),
    ] = None,
    shard_dir: Annotated[
        Path, typer.Option(help="With --shard: where the slice's answers and manifest go.")
    ] = Path(".promptgate/shard"),
    worktree: Annotated[
        bool,
        typer.Option(
            "--worktree",
            help="Judge the working tree (uncommitted edits, untracked prompts) as the head. "
            "Outside CI this is the default when such files exist and --head is not given.",
        ),
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Judge only each eval set's first N examples (a partial run)."),
    ] = None,
    examples: Annotated[
        str | None,
        typer.Option(help="Judge only these example ids, comma-separated (a partial run)."),
    ] = None,
) -> None:
    """Judge the prompt files changed between merge-base(base, head) and head.

    Outside CI, without --head, uncommitted changes to the prompts, eval sets or config the
    gate reads are judged too (the head is then the working tree); --head HEAD judges the last
    commit alone."""
    from promptgate.worktree import is_ci

    ci = is_ci()
    example_ids = tuple(i.strip() for i in (examples or "").split(",") if i.strip())
    partial = limit is not None or bool(example_ids)
    problem = _refused(worktree=worktree, head=head, partial=partial, shard=shard, ci=ci)
    if problem:
        raise typer.Exit(_report_error(BadInput(problem)))
    request = GateRequest(
        repo=repo,
        base=base,
        head=head,
        config_path=config,
        all_prompts=all_prompts,
        report_json=report_json,
        report_md=report_md,
        use_cache=not no_cache,
        cache_path=cache_path,
        mlflow_tracking_uri=mlflow_tracking_uri,
        work_tree="always" if worktree else "never" if head or ci or shard else "if-uncommitted",
        limit=limit,
        example_ids=example_ids,
    )
    if shard is not None:
        raise typer.Exit(_run_shard(request, shard, shard_dir))
    raise typer.Exit(execute(request))


def _refused(
    *, worktree: bool, head: str | None, partial: bool, shard: str | None, ci: bool
) -> str | None:
    """Flags that cannot go together. A CI run's verdict is about commits, judged in full, and
    so is a shard's (`promptgate merge` judges the commits the shards ran on)."""
    if worktree and head:
        return "--worktree judges the working tree as the head: drop --head (or --worktree)"
    if shard is not None and (worktree or partial):
        return "--shard judges commits in full: drop --worktree, --limit and --examples"
    if worktree and ci:
        return (
            "--worktree judges files no commit holds, and this is a CI run (CI is set), whose "
            "verdict must be about commits: commit the files, or run it on your machine"
        )
    if partial and ci:
        return (
            "--limit and --examples judge a subset, and this is a CI run (CI is set): a partial "
            "run is a look while editing, never a verdict for CI; drop them"
        )
    return None


def _run_shard(request: GateRequest, shard_text: str, directory: Path) -> int:
    from promptgate.shard import parse_shard, run_shard

    try:
        shard = parse_shard(shard_text)
        manifest = run_shard(request, shard, directory, progress=_progress_bar)
    except GateError as exc:
        return _report_error(exc)
    except KeyboardInterrupt:
        err.print(INTERRUPTED)
        return int(ExitCode.COULD_NOT_EVALUATE)
    calls = manifest.calls
    out.print(
        f"shard {shard.index}/{shard.count}: {manifest.pairs} of {manifest.total_pairs} "
        f"(prompt, example) pairs, {calls.made} calls made, {calls.cached} cached; answers in "
        f"{escape(str(directory))}. Run `promptgate merge` on every shard's directory.",
        highlight=False,
    )
    return int(ExitCode.PASSED)


@app.command()
def merge(
    shard_dirs: Annotated[list[Path], typer.Argument(help="Every shard's --shard-dir.")],
    repo: Annotated[Path, typer.Option(help="Repository to judge.")] = Path("."),
    base: Annotated[str | None, typer.Option(help="The shards' base ref.")] = None,
    head: Annotated[str | None, typer.Option(help="The shards' head ref.")] = None,
    config: Annotated[
        str, typer.Option(help="Config path, relative to the repo root.")
    ] = "promptgate.yaml",
    report_json: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    report_md: Annotated[Path | None, typer.Option(help="Write the Markdown report here.")] = None,
    all_prompts: Annotated[bool, typer.Option("--all", help="The shards ran with --all.")] = False,
    cache_path: Annotated[
        Path | None, typer.Option(help="Where the shards' answers are combined.")
    ] = None,
    mlflow_tracking_uri: Annotated[
        str | None, typer.Option(help="Overrides MLFLOW_TRACKING_URI and the config.")
    ] = None,
) -> None:
    """Judge every shard's answers as one run: one verdict, report and MLflow run; no calls."""
    from promptgate.shard import merged_request

    request = GateRequest(
        repo=repo,
        base=base,
        head=head,
        config_path=config,
        all_prompts=all_prompts,
        report_json=report_json,
        report_md=report_md,
        cache_path=cache_path,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    try:
        merged = merged_request(shard_dirs, request)
    except GateError as exc:
        raise typer.Exit(_report_error(exc)) from exc
    raise typer.Exit(execute(merged))


def execute(request: GateRequest, console: Console = out) -> int:
    """Run the gate and print its summary; every failure ends in a report and an exit code.
    The verdict is printed as soon as it is known; logging to MLflow follows."""
    from promptgate.gate import error_report, evaluate, publish, write_reports
    from promptgate.report.terminal import print_mlflow, print_summary

    try:
        result = evaluate(request, progress=_progress_bar, publishing=True)
        print_summary(result.report, console, mlflow=False)
        publish(result, request)
    except GateError as exc:
        write_reports(error_report(request, exc), request)
        return _report_error(exc)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from a cancelled job (see interrupt.py)
        err.print(INTERRUPTED)
        return int(ExitCode.COULD_NOT_EVALUATE)
    print_mlflow(result.report, console)
    return int(result.exit_code)


def _report_error(exc: GateError) -> int:
    """Say what went wrong, on stderr; the exit code it maps to."""
    err.print(f"[bold red]promptgate: error:[/] {escape(terminal(str(exc)))}")
    return int(exc.exit_code)


def _progress_bar(total: int) -> Callable[[int], None]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = progress.add_task("calls", total=total)
    progress.start()

    def advance(done: int) -> None:
        progress.update(task, completed=done)
        if done >= total:
            progress.stop()

    return advance


@app.command()
def calibrate(
    repo: Annotated[Path, typer.Option(help="Repository to calibrate.")] = Path("."),
    ref: Annotated[str, typer.Option(help="Where the prompts and config are read.")] = "HEAD",
    config: Annotated[
        str, typer.Option(help="Config path, relative to the repo root.")
    ] = "promptgate.yaml",
    report_json: Annotated[
        Path | None, typer.Option(help="Write the measurements here as JSON.")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write cached LLM outputs.")
    ] = False,
    cache_path: Annotated[
        Path | None, typer.Option(help="Cache file (default: <repo>/.promptgate/cache.sqlite3).")
    ] = None,
) -> None:
    """Run every configured prompt against itself (A/A) and suggest max_drop above the noise."""
    from promptgate.calibrate import calibrate as run_calibration
    from promptgate.gate import write_atomically
    from promptgate.report.calibration import print_calibration

    request = GateRequest(
        repo=repo,
        base=ref,
        head=ref,
        config_path=config,
        all_prompts=True,
        use_cache=not no_cache,
        cache_path=cache_path,
    )
    try:
        calibration = run_calibration(request, progress=_progress_bar)
    except GateError as exc:
        raise typer.Exit(_report_error(exc)) from exc
    except KeyboardInterrupt as exc:
        err.print(INTERRUPTED)
        raise typer.Exit(int(ExitCode.COULD_NOT_EVALUATE)) from exc
    print_calibration(calibration, out)
    if report_json:
        write_atomically(report_json, calibration.model_dump_json(indent=2) + "\n")


@app.command()
def demo(
    directory: Annotated[
        Path | None, typer.Option(help="Where to build the demo repository (default: a temp dir).")
    ] = None,
) -> None:
    """Build a small example repository with a regressing PR branch and gate it, offline."""
    from promptgate.demo import run_demo

    raise typer.Exit(run_demo(directory, out))


@app.command()
def init(
    directory: Annotated[Path, typer.Option(help="Repository root to scaffold.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Write a starter promptgate.yaml, an example prompt and eval set, and a workflow file."""
    from promptgate.scaffold import scaffold

    try:
        written = scaffold(directory, force=force)
    except GateError as exc:
        raise typer.Exit(_report_error(exc)) from exc
    for path in written:
        out.print(f"wrote {path}")
    out.print(
        "\nNext: commit these files, and `promptgate run --all` judges every configured prompt. "
        "Then edit a prompt: `promptgate run` judges the edit, committed or not.",
        highlight=False,
    )


@app.command("config-schema")
def config_schema() -> None:
    """Print the JSON Schema of promptgate.yaml (for editors and validation)."""
    from promptgate.config import config_json_schema

    sys.stdout.write(json.dumps(config_json_schema(), indent=2) + "\n")


@app.command()
def registry(
    prompt: Annotated[
        str | None,
        typer.Argument(
            help="A prompt's repository path or MLflow name (default: list the prompts "
            "promptgate registered)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="promptgate.yaml whose mlflow section names the store (default: "
            "./promptgate.yaml when present)."
        ),
    ] = None,
    mlflow_tracking_uri: Annotated[
        str | None, typer.Option(help="Overrides MLFLOW_TRACKING_URI and the config.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the versions of a prompt in MLflow's Prompt Registry, or the registered prompts."""
    from promptgate.mlflow_store import redact_uri
    from promptgate.registry.read import (
        list_prompt_versions,
        list_registered_prompts,
        registry_store,
    )
    from promptgate.registry.show import print_prompts, print_versions

    try:
        uri = registry_store(config, mlflow_tracking_uri)
        if prompt is None:
            prompts = list_registered_prompts(uri)
        else:
            name, versions = list_prompt_versions(prompt, uri)
    except GateError as exc:
        raise typer.Exit(_report_error(exc)) from exc
    if as_json:
        shown = prompts if prompt is None else versions
        sys.stdout.write(json.dumps([item.model_dump(mode="json") for item in shown], indent=2))
        sys.stdout.write("\n")
    elif prompt is None:
        print_prompts(out, prompts, redact_uri(uri))
    else:
        print_versions(out, name, versions)


def main() -> None:
    """Console entry point. A bug is exit 3 with its traceback: an error is never a pass."""
    from promptgate.interrupt import terminate_as_interrupt
    from promptgate.shutdown import before_exit

    if os.environ.get("GITHUB_ACTIONS") == "true":  # a workflow step: the runner reads the output
        from promptgate.github.workflow import InertLines

        sys.stdout, sys.stderr = InertLines(sys.stdout), InertLines(sys.stderr)
    try:
        with terminate_as_interrupt():
            app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err.print(INTERRUPTED)
        sys.exit(int(ExitCode.COULD_NOT_EVALUATE))
    except Exception:
        sys.stderr.write("\n".join(map(terminal, traceback.format_exc().splitlines())) + "\n")
        err.print("[bold red]promptgate: internal error[/] (a bug; please report it). Exit 3.")
        sys.exit(int(ExitCode.COULD_NOT_EVALUATE))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        before_exit()
