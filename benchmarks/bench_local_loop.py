"""The local loop's feedback time: from the model's last answer to the verdict on screen.

    python benchmarks/bench_local_loop.py [--runs 5] [--examples 40]

A repository with one committed prompt and its eval set; the prompt is edited and not
committed; `promptgate run --base main` (a developer's shell: CI unset, so the working tree is
judged) runs in a fresh process against the LLM stub on 127.0.0.1. Each line of its output is
stamped with time.monotonic() as it arrives (system-wide: the stub's clock too). Figures,
medians of --runs, each with a new edit (so both the edit's calls and the scoring are fresh):

- verdict line   from the stub's last answer to the verdict line; target <= 1 s (issue 15)
- MLflow line    from the stub's last answer to the "MLflow run" line: what the verdict would
                 wait for if it were printed after logging (the order before issue 15)
- calls          what the re-run after a one-word edit made: only the edited side's answers

with BLEU + ROUGE-L, and again with the semantic metric (the starter config's three), each with
an instant model (20 ms an answer: the calls end before the scoring worker has loaded its
model, so the figure includes that load) and at a real model's pace (0.5 s an answer).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gate_fixtures import API_KEY, API_KEY_ENV, config_yaml  # noqa: E402
from gitrepo import RepoBuilder  # noqa: E402
from llm_stub import LLMStub  # noqa: E402

FAST = "  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n"
SEMANTIC = FAST + "  semantic: { max_drop: 0.02 }\n"
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


@dataclass
class Timing:
    verdict_s: float  # last answer -> verdict line
    mlflow_s: float  # last answer -> MLflow line
    made: int  # calls the run made


def eval_set(count: int) -> str:
    lines = []
    for i in range(count):
        text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(8 + i % 5))
        lines.append(json.dumps({"id": f"ex-{i}", "vars": {"text": text}, "expected": text}))
    return "\n".join(lines) + "\n"


def timed_run(repo: RepoBuilder, stub: LLMStub) -> Timing:
    """One `promptgate run` in a fresh process; each output line stamped on arrival."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}
    env.update({"HF_HUB_OFFLINE": "1", "COLUMNS": "200", API_KEY_ENV: API_KEY})
    report = repo.root.parent / "report.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "promptgate", "run", "--base", "main", "--report-json", str(report)],
        cwd=repo.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    stamped: list[tuple[float, str]] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stamped.append((time.monotonic(), line))

    reader = threading.Thread(target=read)
    reader.start()
    process.wait(timeout=600)
    reader.join()
    last = stub.last_answer_at
    assert last is not None, "the stub answered nothing"
    verdict = next(t for t, line in stamped if "promptgate: gate" in line)
    mlflow = next(t for t, line in stamped if line.startswith("MLflow run"))
    made = json.loads(report.read_text())["calls"]["made"]
    return Timing(verdict - last, mlflow - last, made)


def measure(metrics: str, latency: float, runs: int, examples: int, tmp: Path) -> list[Timing]:
    with LLMStub(api_key=API_KEY, latency_s=latency) as stub:
        repo = RepoBuilder(tmp)
        repo.commit(
            {
                "promptgate.yaml": config_yaml(stub, tmp / "mlflow.db", metrics=metrics),
                "prompts/a.txt": "Repeat this: {{ text }}\n",
                "evals/a.jsonl": eval_set(examples),
            }
        )
        timings = []
        for run in range(runs + 1):  # the first run also fills the baseline's answers
            (tmp / "prompts/a.txt").write_text(f"Repeat this, version {run}: {{{{ text }}}}\n")
            timings.append(timed_run(repo, stub))
        return timings[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--examples", type=int, default=40)
    parser.add_argument(
        "--latency",
        type=float,
        nargs="+",
        default=[0.02, 0.5],
        help="the stub's seconds per answer: an instant model, and a real model's pace",
    )
    args = parser.parse_args()
    print(
        "| metrics | model latency | verdict line after the last answer | MLflow line after it "
        f"| calls per re-run ({args.examples} examples) |"
    )
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name, metrics in (("BLEU + ROUGE-L", FAST), ("+ semantic", SEMANTIC)):
            for latency in args.latency:
                where = Path(scratch) / f"{len(metrics)}-{latency}"
                timings = measure(metrics, latency, args.runs, args.examples, where)
                verdict = statistics.median(t.verdict_s for t in timings)
                mlflow = statistics.median(t.mlflow_s for t in timings)
                made = sorted({t.made for t in timings})
                each = ", ".join(f"{t.verdict_s:.2f}" for t in timings)
                print(
                    f"| {name} | {latency:g} s | **{verdict:.2f} s** ({verdict:.2f}x of the 1 s "
                    f"bound; {each}) | {mlflow:.2f} s | {', '.join(map(str, made))} |"
                )


if __name__ == "__main__":
    main()
