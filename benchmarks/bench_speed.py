"""Every speed figure of the gate, measured against the local stub, each beside its target.

    python benchmarks/bench_speed.py [--n 200] [--n-large 1000] [--latency 0.2]
                                     [--concurrency 16] [--server-limit 8] [--failure-rate 0.05]
                                     [--repeat 3]
                                     [--only latency limited flaky large cached semantic cold mlflow
                                             cli]

The stub (tests/llm_stub.py) runs in a process of its own with the given latency, in-flight
limit (beyond it: 429 with Retry-After: 1) and share of HTTP 500s. Every figure is taken in a
fresh Python process, so imports, the scoring worker's start and git all count:

- latency  N examples x 2 versions, BLEU + ROUGE-L, cache off: wall time from launching the
           process to the verdict (Python's start, imports, git, plan, calls, scoring, bootstrap)
           against the bound ceil(2N/C) x latency; the median of --repeat runs. The note splits
           it: when the first request arrived, and the ratio of the rest to the bound
- limited  the same against a server admitting only --server-limit calls at once (429 beyond):
           against the bound of that many slots
- flaky    the same with --failure-rate of the calls answered HTTP 500: zero failed examples
- large    --n-large examples at zero latency: the whole process, start to verdict
- cached   the large run again in a new process, every answer from the cache: zero calls
- semantic the large run with the semantic metric added: the extra time, model load included,
           and the peak memory of the gate's process and of its scoring worker. The model's ONNX
           export is cached as scripts/install.sh leaves it (a first export is ~10 s more, once)
- cold     from starting the process to the first request reaching the server (no semantic)

MLflow logging comes after the verdict and is not in these figures; `mlflow` times it apart:
- mlflow   the latency run again, logged to a local sqlite store as `promptgate run` does (MLflow
           imported while the calls run): the time after the verdict, new store then existing
           (no target; a shared tracking server is the other case, timed in tests/test_tracking.py)
- cli      `promptgate run` on the latency setting, the whole command as a developer waits for it:
           CLI, evaluation, MLflow into a local sqlite store, reports and exit (no target)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

METRICS_FAST = "  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n"
METRICS_SEMANTIC = METRICS_FAST + "  semantic: { max_drop: 0.02 }\n"


def build_repo(root: Path, base_url: str, n: int, concurrency: int, metrics: str) -> Path:
    from gitrepo import RepoBuilder

    builder = RepoBuilder(root)
    examples = "".join(
        json.dumps(
            {
                "id": f"ex-{i}",
                "vars": {"text": f"example number {i} says hello to the world"},
                "expected": f"example number {i} says hello to the world",
            }
        )
        + "\n"
        for i in range(n)
    )
    config = (
        "version: 1\nprovider:\n  kind: openai\n"
        f"  base_url: {base_url}\n  model: bench\n  concurrency: {concurrency}\n  timeout_s: 30\n"
        "  max_retries: 8\n"
        "prompts:\n  - path: prompts/a.txt\n    dataset: evals/a.jsonl\n"
        f"metrics:\n{metrics}"
    )
    builder.commit(
        {"promptgate.yaml": config, "prompts/a.txt": "{{ text }}\n", "evals/a.jsonl": examples}
    )
    builder.branch("pr")
    builder.commit({"prompts/a.txt": "Answer: {{ text }}\n"})
    return builder.root


# --- the measured process ----------------------------------------------------------------------


def child(repo: str, cache: str | None, mlflow_uri: str | None = None) -> None:
    """Run the gate's evaluation once and print its timings as JSON (started in a new process);
    with `mlflow_uri`, then log it there as the CLI does and time that too."""
    started = time.monotonic()
    from promptgate.gate import evaluate, publish
    from promptgate.request import GateRequest
    from promptgate.scoring import stop_worker

    imported = time.monotonic()
    request = GateRequest(
        repo=Path(repo),
        base="main",
        head="pr",
        use_cache=cache is not None,
        cache_path=Path(cache) if cache else None,
        mlflow_tracking_uri=mlflow_uri,
    )
    result = evaluate(request, publishing=mlflow_uri is not None)  # as cli.execute does
    finished = time.monotonic()
    if mlflow_uri is not None:
        publish(result, request)
    published = time.monotonic()
    stop_worker(wait=True)  # so the worker's peak memory is in RUSAGE_CHILDREN
    calls = result.report.calls
    print(
        json.dumps(
            {
                "started": started,
                "imported": imported,
                "finished": finished,
                "published": published,
                "verdict": result.report.verdict,
                "made": calls.made,
                "cached": calls.cached,
                "failed": calls.failed,
                "retried": calls.retried,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


@dataclass
class Run:
    launched: float  # time.monotonic() just before the process was started
    wall: float  # from then to the end of the evaluation
    data: dict[str, float | str]


def measure(repo: Path, cache: Path | None = None, mlflow_uri: str | None = None) -> Run:
    command = [sys.executable, __file__, "--child", str(repo)]
    if cache is not None:
        command += ["--cache", str(cache)]
    if mlflow_uri is not None:
        command += ["--mlflow", mlflow_uri]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    launched = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the measured run failed:\n{done.stderr}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(launched=launched, wall=float(data["finished"]) - launched, data=data)


# --- the figures -------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    measured: str
    target: str
    met: bool | None  # None: a figure without a target, reported for information
    note: str = ""


def latency_figure(
    name: str, args: argparse.Namespace, tmp: Path, *, limit: int | None, failure_rate: float
) -> Figure:
    """The median of --repeat runs, each in a fresh process against a fresh stub."""
    from llm_stub import StubProcess

    runs: list[tuple[Run, float]] = []  # (run, seconds from launch to the first request)
    for attempt in range(args.repeat):
        with StubProcess(
            latency_s=args.latency, max_in_flight=limit, failure_rate=failure_rate
        ) as stub:
            repo = build_repo(
                tmp / f"{name}-{attempt}", stub.base_url, args.n, args.concurrency, METRICS_FAST
            )
            stub.first_request_at()  # forget the requests of earlier runs
            run = measure(repo)
            first = stub.first_request_at()
            assert first is not None
            runs.append((run, first - run.launched))
    runs.sort(key=lambda pair: pair[0].wall)
    run, startup = runs[len(runs) // 2]
    slots = min(args.concurrency, limit) if limit else args.concurrency
    bound = math.ceil(2 * args.n / slots) * args.latency
    ratio = run.wall / bound
    target = {"latency": 1.10, "limited": 1.2, "flaky": 1.3}[name]
    failed = int(run.data["failed"])
    after_start = (run.wall - startup) / bound
    return Figure(
        name,
        f"{run.wall:.2f} s = {ratio:.2f}x of {bound:.1f} s",
        f"<= {target:.2f}x" + (", 0 failed" if failure_rate else ""),
        ratio <= target and failed == 0,
        f"{run.data['made']} calls, {run.data['retried']} retried, {failed} failed; "
        f"first request at {startup:.2f} s, from there {after_start:.2f}x "
        f"(median of {len(runs)}: {', '.join(f'{r.wall:.2f}' for r, _ in runs)} s)",
    )


def large_figures(args: argparse.Namespace, tmp: Path, only: set[str]) -> list[Figure]:
    from llm_stub import StubProcess

    figures = []
    with StubProcess() as stub:
        repo = build_repo(
            tmp / "large", stub.base_url, args.n_large, args.concurrency, METRICS_FAST
        )
        cache = tmp / "large-cache.sqlite3"
        if "cold" in only:
            launched = time.monotonic()
            stub.first_request_at()  # forget earlier requests
            run = measure(repo)
            first = stub.first_request_at()
            assert first is not None
            cold = first - (launched + 0.0)
            figures.append(
                Figure("cold", f"{cold:.2f} s to the first request", "<= 1.5 s", cold <= 1.5)
            )
        if {"large", "cached"} & only:
            run = measure(repo, cache)  # fills the cache
            per_example = run.wall / (2 * args.n_large) * 1000
            figures.append(
                Figure(
                    "large",
                    f"{run.wall:.2f} s ({per_example:.2f} ms per call)",
                    "<= 4 s",
                    run.wall <= 4.0,
                    f"imports {float(run.data['imported']) - float(run.data['started']):.2f} s",
                )
            )
            again = measure(repo, cache)
            figures.append(
                Figure(
                    "cached",
                    f"{again.wall:.2f} s, {again.data['made']} calls",
                    "<= 2.5 s, 0 calls",
                    again.wall <= 2.5 and again.data["made"] == 0,
                )
            )
            base_wall = run.wall
        else:
            base_wall = None
        if "semantic" in only:
            if base_wall is None:
                base_wall = measure(repo).wall
            semantic_repo = build_repo(
                tmp / "semantic", stub.base_url, args.n_large, args.concurrency, METRICS_SEMANTIC
            )
            run = measure(semantic_repo)
            extra = run.wall - base_wall
            figures.append(
                Figure(
                    "semantic",
                    f"+{extra:.2f} s on top ({run.wall:.2f} s in all)",
                    "<= 8 s on top",
                    extra <= 8.0,
                    f"peak RSS: gate {float(run.data['rss_mb']):.0f} MB, "
                    f"scoring worker {float(run.data['worker_rss_mb']):.0f} MB",
                )
            )
    return figures


def mlflow_figure(args: argparse.Namespace, tmp: Path) -> Figure:
    """The latency run logged to a local sqlite store, as `promptgate run` does after the verdict
    (MLflow imported while the calls run): into a new store (its schema is created), then into
    that store again. The time after the verdict is what MLflow adds to the user's wait."""
    from llm_stub import StubProcess

    uri = f"sqlite:///{(tmp / 'mlflow.db').as_posix()}"
    with StubProcess(latency_s=args.latency) as stub:
        repo = build_repo(tmp / "mlflow", stub.base_url, args.n, args.concurrency, METRICS_FAST)
        new, again = (measure(repo, mlflow_uri=uri) for _ in range(2))

    def seconds(run: Run) -> float:
        return float(run.data["published"]) - float(run.data["finished"])

    return Figure(
        "mlflow",
        f"+{seconds(new):.2f} s to a new sqlite store, +{seconds(again):.2f} s to it again",
        "none (after the verdict)",
        None,
        f"the latency run's nested runs (verdicts at {new.wall:.2f} and {again.wall:.2f} s)",
    )


def cli_figure(args: argparse.Namespace, tmp: Path) -> Figure:
    """What a developer waits for: `promptgate run` on the latency setting, the whole process
    (CLI, evaluation, MLflow into a local sqlite store, reports, exit); a first run creates the
    store, then the median of --repeat runs into it."""
    from llm_stub import StubProcess

    uri = f"sqlite:///{(tmp / 'cli-mlflow.db').as_posix()}"
    executable = Path(sys.executable).with_name("promptgate")
    with StubProcess(latency_s=args.latency) as stub:
        repo = build_repo(tmp / "cli", stub.base_url, args.n, args.concurrency, METRICS_FAST)
        command = [str(executable), "run", "--repo", str(repo), "--base", "main", "--head", "pr"]
        command += ["--no-cache", "--mlflow-tracking-uri", uri]
        walls = []
        for _ in range(1 + args.repeat):
            launched = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            walls.append(time.monotonic() - launched)
            if done.returncode not in (0, 1):
                raise SystemExit(f"promptgate run failed:\n{done.stderr}")
    first, rest = walls[0], sorted(walls[1:])
    bound = math.ceil(2 * args.n / args.concurrency) * args.latency
    median = rest[len(rest) // 2]
    return Figure(
        "cli",
        f"{median:.2f} s = {median / bound:.2f}x of {bound:.1f} s",
        "none (whole command)",
        None,
        f"into an existing sqlite store, median of {len(rest)}; {first:.2f} s creating it",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--n-large", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--server-limit", type=int, default=8)
    parser.add_argument("--failure-rate", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3, help="runs per latency figure (median)")
    names = ["latency", "limited", "flaky", "large", "cached", "semantic", "cold", "mlflow", "cli"]
    parser.add_argument("--only", nargs="+", choices=names, default=names)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--mlflow", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.cache, args.mlflow)
        return

    only = set(args.only)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        if "latency" in only:
            figures.append(latency_figure("latency", args, tmp, limit=None, failure_rate=0.0))
        if "limited" in only:
            figures.append(
                latency_figure("limited", args, tmp, limit=args.server_limit, failure_rate=0.0)
            )
        if "flaky" in only:
            figures.append(
                latency_figure("flaky", args, tmp, limit=None, failure_rate=args.failure_rate)
            )
        figures += large_figures(args, tmp, only)
        if "mlflow" in only:
            figures.append(mlflow_figure(args, tmp))
        if "cli" in only:
            figures.append(cli_figure(args, tmp))

    print(
        f"promptgate speed: N={args.n} (large {args.n_large}), latency {args.latency * 1000:.0f} "
        f"ms, concurrency {args.concurrency}, server limit {args.server_limit}, "
        f"failure rate {args.failure_rate:.0%}, {os.cpu_count()} CPUs"
    )
    width = max(len(f.measured) for f in figures)
    for figure in figures:
        mark = "info" if figure.met is None else "ok  " if figure.met else "MISS"
        print(
            f"{mark} {figure.name:9s} {figure.measured:<{width}s}  target {figure.target:20s} "
            f"{figure.note}"
        )


if __name__ == "__main__":
    main()
