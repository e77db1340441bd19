"""The gate's decision rule on thousands of no-op PRs, without HTTP: the PR-level error rate
to a precision that 1000 HTTP runs cannot give.

    python benchmarks/bench_rule_at_scale.py --runs 2000 --workers 2 [--seed 2] [--prompts 6]
        [--n 200] [--repeats 3] [--error-rate 0.01 0.005] [--raw runs.jsonl]

Each PR is what `bench_error_rates.py` sends through the gate, computed in-process: for each
of K prompts and each version, the stub's own answer to each request (`noisy_answer`, seeded by
salt, request body and occurrence exactly as the stub server seeds it), scored by the gate's
scoring worker functions (BLEU and ROUGE-L, `compare`: the paired bootstrap SE and one-sided
t-test), then decided by Holm over the PR's 2K tests with the starter `max_drop`s, at each
--error-rate. About 1 s a PR on one core at K = 6, N = 200 (the HTTP bench: about 2 s).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks"), str(ROOT)]

from bench_error_rates import (  # noqa: E402
    INSTRUCTION,
    NOOP_INSTRUCTION,
    _numbered,
    fails_under,
    make_references,
    wilson,
)
from llm_stub import noise_seed, noisy_answer  # noqa: E402

MAX_DROPS = {"bleu": 2.0, "rougeL": 0.02}
TEMPERATURE, NOISE, MAX_TOKENS = 0.7, 0.3, 256


def references(n: int, repeats: int, seed: int) -> list[str]:
    """The eval set `bench_error_rates.py` builds: N/repeats sentences, each `repeats` times."""
    distinct = make_references(n, seed)[: n // repeats]
    return [distinct[i % len(distinct)] for i in range(n)]


def answers(salt: str, instruction: str, refs: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for ref in refs:
        body = {
            "messages": [{"role": "user", "content": f"{instruction}\n{ref}\n"}],
            "model": "stub",
            "temperature": TEMPERATURE,
            "max_tokens": MAX_TOKENS,
        }
        occurrence = seen.get(ref, 0)
        seen[ref] = occurrence + 1
        rng = random.Random(noise_seed(salt, body, occurrence))
        out.append(
            noisy_answer(
                body["messages"],
                temperature=TEMPERATURE,
                max_tokens=MAX_TOKENS,
                sampling_noise=NOISE,
                rng=rng,
            )
        )
    return out


@functools.cache
def _scoring() -> tuple[Any, Any, Any, Any]:
    from promptgate import scoring_worker
    from promptgate.config import GateSettings, MetricConfig
    from promptgate.scoring import SideRows

    configs = {name: MetricConfig(max_drop=drop) for name, drop in MAX_DROPS.items()}
    return scoring_worker, configs, GateSettings(), SideRows


def simulate(task: tuple[str, int, int, int, int, int]) -> dict[str, Any]:
    """One no-op PR: every (prompt, metric) test's delta and one-sided p-value."""
    cell, run, seed, prompts, n, repeats = task
    worker, configs, gate, side_rows = _scoring()
    refs = references(n, repeats, seed)
    salt = f"{seed}/{cell}/{run}"
    tests = []
    for prompt in range(prompts):
        sides = {}
        for side, instruction in (("baseline", INSTRUCTION), ("candidate", NOOP_INSTRUCTION)):
            rows = worker.score_batch(
                configs, answers(salt, _numbered(prompt, instruction), refs), refs
            )
            sides[side] = side_rows(
                rows=rows, example_of=list(range(len(refs))), n_examples=len(refs)
            )
        for name, result in worker.compare(configs, sides, gate).results.items():
            tests.append([prompt, name, result.delta, result.p_value])
    return {"cell": cell, "seed": seed, "run": run, "tests": tests}


def runs(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    cell = (
        f"noop-n{args.n}-s0"
        + (f"-r{args.repeats}" if args.repeats > 1 else "")
        + f"-k{args.prompts}"
    )
    tasks = [
        (cell, run, args.seed, args.prompts, args.n, args.repeats)
        for run in range(args.first, args.first + args.runs)
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        yield from pool.map(simulate, tasks, chunksize=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--first", type=int, default=1000, help="first run number (its salt)")
    parser.add_argument("--seed", type=int, default=2, help="the sentences' seed, as in the bench")
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--error-rate", type=float, nargs="+", default=[0.01, 0.005])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--raw", type=Path, help="every PR's tests, one JSON object a line")
    args = parser.parse_args()
    results = []
    with args.raw.open("a") if args.raw else open("/dev/null", "w") as raw:
        for result in runs(args):
            results.append(result)
            raw.write(json.dumps(result) + "\n")
    tests = 2 * args.prompts
    print(f"{len(results)} no-op PRs, {args.prompts} prompts x N={args.n} (repeats {args.repeats})")
    for rate in args.error_rate:
        failed = sum(fails_under(r["tests"], MAX_DROPS, rate) for r in results)
        first = sum(1 for r in results for t in r["tests"] if t[3] <= rate / tests)
        low, high = wilson(failed, len(results))
        print(
            f"error_rate {rate:g}: {failed} failed ({100 * failed / len(results):.2f} %, Wilson "
            f"{100 * low:.2f}-{100 * high:.2f} %); tests at Holm's first level: {first} "
            f"(valid p-values allow {len(results) * rate:.1f})"
        )


if __name__ == "__main__":
    main()
