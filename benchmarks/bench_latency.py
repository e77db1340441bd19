"""Wall time of the gate against a server with fixed latency, beside the latency bound.

    python benchmarks/bench_latency.py [--n 200] [--latency 0.2] [--concurrency 16]

Builds a repository with one modified prompt and N examples, serves completions from the test
stub (tests/llm_stub.py, in a process of its own) with the given latency, and runs the gate with BLEU + ROUGE-L and the
cache off. The bound is ceil(2N / C) x latency: the time the calls alone need at concurrency C.
Printed: the gate's evaluation (git, plan, calls, scoring, bootstrap), and MLflow logging apart.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gitrepo import RepoBuilder
from llm_stub import StubProcess

from promptgate.gate import evaluate
from promptgate.request import GateRequest


def build_repo(root: Path, base_url: str, n: int, concurrency: int) -> RepoBuilder:
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
        "prompts:\n  - path: prompts/a.txt\n    dataset: evals/a.jsonl\n"
        "metrics:\n  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n"
    )
    builder.commit(
        {"promptgate.yaml": config, "prompts/a.txt": "{{ text }}\n", "evals/a.jsonl": examples}
    )
    builder.branch("pr")
    builder.commit({"prompts/a.txt": "Answer: {{ text }}\n"})
    return builder


def time_calls_alone(base_url: str, count: int, concurrency: int) -> float:
    """The runner on its own: `count` distinct requests, no git, no scoring, no cache."""
    from promptgate.config import ProviderConfig
    from promptgate.providers import make_provider
    from promptgate.providers.base import ChatMessage, ChatRequest
    from promptgate.runner import run_requests_sync

    provider = make_provider(
        ProviderConfig(base_url=base_url, model="bench", concurrency=concurrency)
    )
    requests = [
        ChatRequest(
            model="bench",
            messages=(ChatMessage(role="user", content=f"call {i}"),),
            temperature=0,
            max_tokens=64,
        )
        for i in range(count)
    ]
    started = time.perf_counter()
    run_requests_sync(requests, provider, None, concurrency=concurrency, max_retries=3)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, StubProcess(latency_s=args.latency) as stub:
        builder = build_repo(Path(tmp) / "repo", stub.base_url, args.n, args.concurrency)
        request = GateRequest(repo=builder.root, base="main", head="pr", use_cache=False)
        started = time.perf_counter()
        result = evaluate(request)
        wall = time.perf_counter() - started

        calls_wall = time_calls_alone(stub.base_url, 2 * args.n, args.concurrency)

        from promptgate.tracking import log_gate_run

        assert result.config is not None
        started = time.perf_counter()
        log_gate_run(
            result.report,
            result.evaluations,
            result.config.mlflow,
            tracking_uri=f"sqlite:///{tmp}/mlflow.db",
        )
        mlflow_wall = time.perf_counter() - started

    bound = math.ceil(2 * args.n / args.concurrency) * args.latency
    print(
        f"N={args.n} latency={args.latency * 1000:.0f} ms concurrency={args.concurrency} "
        f"calls={result.report.calls.made} verdict={result.report.verdict}"
    )
    print(f"gate evaluation wall time  {wall:6.2f} s")
    print(f"latency bound ceil(2N/C)*L {bound:6.2f} s")
    print(f"ratio                      {wall / bound:6.2f}x   (target <= 1.10x)")
    print(f"the calls alone (runner)   {calls_wall:6.2f} s   ratio {calls_wall / bound:.2f}x")
    print(f"MLflow logging (sqlite)    {mlflow_wall:6.2f} s   (not part of the bound)")


if __name__ == "__main__":
    main()
