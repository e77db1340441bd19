"""Scoring in a worker process, fed while generation runs.

The metric libraries are heavy to import (rouge-score pulls in nltk; the semantic metric,
onnxruntime and its model) and their scoring is pure CPU. In the gate's own process that work
competes for the GIL with the HTTP client; in a worker process it runs on another core. So the worker starts when
the gate does, imports and loads while the first calls are in flight, scores each batch of
answers as it arrives, and at the end builds each side and runs the paired bootstrap. The gate's
process never imports a metric library, nor numpy.

The worker is one process per gate process, started on first use and reused by later runs (the
test suite runs hundreds). What it runs lives in scoring_worker.py, which this process never
imports: it is called by name, and its values come back as plain lists.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import multiprocessing.util
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from promptgate.config import GateSettings, MetricConfig
from promptgate.errors import CouldNotEvaluate
from promptgate.metrics.languages import Settled
from promptgate.report.model import MetricResult, Side

MetricConfigs = dict[str, MetricConfig]
#: Each metric's rows for a batch of answers: `rows[name][i]` is answer i's row (a metric's
#: row is one score, or sufficient statistics such as BLEU's n-gram counts).
Rows = dict[str, list[list[float]]]
T = TypeVar("T")
#: Answers are sent to the worker in batches of this many (a batch is one embedding call, too).
BATCH_SIZE = 64


class Slot(NamedTuple):
    """Where an answer belongs: prompt plan, side, example and sample index."""

    plan: int
    side: Side
    example: int
    sample: int


@dataclass(frozen=True)
class SideRows:
    """One side of one prompt as the worker needs it: each metric's rows, and whose they are."""

    rows: Rows
    example_of: list[int]
    n_examples: int


@dataclass(frozen=True)
class Comparison:
    results: dict[str, MetricResult]
    #: per side and metric, each example's score (the mean over its samples)
    per_example: dict[Side, dict[str, list[float]]]


@dataclass(frozen=True)
class Noise:
    """An A/A comparison: the delta, its interval and the bootstrap's standard deviation."""

    delta: float
    ci_low: float
    ci_high: float
    standard_error: float


# --- in the worker process -------------------------------------------------------------------


def exit_with_parent(parent: int) -> None:
    """Worker initializer: end this process when the gate's process is gone.

    A parent killed outright (SIGKILL, an OOM kill) never tells its workers, and a worker
    waiting on its task queue would then outlive it, holding the job's log pipes open.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(3)

    threading.Thread(target=watch, name="promptgate-parent-watch", daemon=True).start()


def _call(function: str, *args: object) -> Any:
    """In the worker: run scoring_worker.<function>, so that only the worker imports it."""
    from promptgate import scoring_worker

    return getattr(scoring_worker, function)(*args)


# --- in the gate's process -------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def scoring_pool() -> ProcessPoolExecutor:
    """The worker process, started on first use ("spawn": no state inherited from this one)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            )
            atexit.register(stop_worker)
            # A multiprocessing worker (a program running the gate in a process pool) exits
            # without atexit handlers, closes its queues and then joins its children, this one
            # included: stop it first, and wait, while the queues still carry the stop message.
            multiprocessing.util.Finalize(
                None, stop_worker, kwargs={"wait": True}, exitpriority=100
            )
        return _pool


def stop_worker(wait: bool = False) -> None:
    """Stop the worker (at exit: without waiting for a task it is still running)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


class Scorer:
    """Collects answers as they arrive and has the worker score them batch by batch.

    `plan_configs[p]` are plan p's metric settings as its eval set settles them (a BLEU
    tokenizer chosen by `auto`, metrics/languages.py); a plan beyond them scores with `configs`.
    Answers are batched per settings, so each reaches the worker with its own.
    """

    def __init__(self, configs: MetricConfigs, settled: Sequence[Settled] = ()) -> None:
        """`settled`: per plan, the settings its eval set settles and its notes (languages.py)."""
        self.configs = dict(configs)
        self._plan_configs = [dict(plan.configs) for plan in settled]
        self._plan_notes = [list(plan.notes) for plan in settled]
        self._plan_keys = [_settings_key(settings) for settings in self._plan_configs]
        self._key = _settings_key(self.configs)
        self._pool = scoring_pool()
        self._signatures: dict[str, Future[dict[str, str]]] = {}
        for settings in self._plan_configs or [self.configs]:
            key = _settings_key(settings)
            if key not in self._signatures:
                self._signatures[key] = self._submit("prepare", settings)
        self._buffers: dict[str, list[tuple[Slot, str, str]]] = {}
        self._batches: list[tuple[list[Slot], Future[Rows]]] = []
        self._rows: dict[Slot, dict[str, list[float]]] = {}
        self._scored_plans: set[int] = set()

    def configs_of(self, plan: int) -> MetricConfigs:
        return self._plan_configs[plan] if plan < len(self._plan_configs) else self.configs

    def _key_of(self, plan: int) -> str:
        return self._plan_keys[plan] if plan < len(self._plan_keys) else self._key

    def _submit(self, function: str, *args: object) -> Future[Any]:
        try:
            return self._pool.submit(_call, function, *args)
        except BrokenProcessPool as exc:
            stop_worker()
            raise CouldNotEvaluate(f"the scoring worker process is gone ({exc})") from exc

    def add(self, slot: Slot, hypothesis: str, reference: str) -> None:
        self._scored_plans.add(slot.plan)
        key = self._key_of(slot.plan)
        buffer = self._buffers.setdefault(key, [])
        buffer.append((slot, hypothesis, reference))
        if len(buffer) >= BATCH_SIZE:
            self._send_batch(key)

    def _send_batch(self, key: str) -> None:
        buffer = self._buffers.pop(key, [])
        if not buffer:
            return
        slots = [slot for slot, _, _ in buffer]
        hypotheses = [text for _, text, _ in buffer]
        references = [reference for _, _, reference in buffer]
        settings = self.configs_of(slots[0].plan)
        self._batches.append((slots, self._submit("score_batch", settings, hypotheses, references)))

    def finish(self) -> None:
        """Wait for every batch; re-raise what the worker raised (a GateError stays one)."""
        for key in list(self._buffers):
            self._send_batch(key)
        for slots, batch in self._batches:
            rows = _result(batch)
            for position, slot in enumerate(slots):
                self._rows[slot] = {name: values[position] for name, values in rows.items()}
        self._batches = []

    def plan_notes(self, plan: int) -> list[str]:
        """What a reader of plan `plan`'s report should know about its text (its script)."""
        return self._plan_notes[plan] if plan < len(self._plan_notes) else []

    def plan_signatures(self, plan: int) -> dict[str, str]:
        """Each metric's signature as plan `plan` was scored."""
        return _result(self._signatures[self._key_of(plan)])

    def signatures(self) -> dict[str, str]:
        """Each metric's signature over the run: one when every scored plan shares it, else the
        distinct ones joined by "; " (each prompt's report has its own)."""
        scored = [self.plan_signatures(plan) for plan in sorted(self._scored_plans)]
        if not scored:
            scored = [_result(next(iter(self._signatures.values())))]
        found: dict[str, set[str]] = {}
        for by_metric in scored:
            for name, signature in by_metric.items():
                found.setdefault(name, set()).add(signature)
        return {name: "; ".join(sorted(signatures)) for name, signatures in found.items()}

    def side_rows(self, plan: int, side: Side, examples: Sequence[int], samples: int) -> SideRows:
        """The rows of the given examples (in that order), every sample of each."""
        slots = [Slot(plan, side, e, k) for e in examples for k in range(samples)]
        rows = {name: [self._rows[slot][name] for slot in slots] for name in self.configs}
        example_of = [position for position in range(len(examples)) for _ in range(samples)]
        return SideRows(rows, example_of, len(examples))

    def compare(self, sides: dict[Side, SideRows], gate: GateSettings) -> Comparison:
        """Each metric's sides, delta, paired bootstrap interval and verdict (compare.py)."""
        comparison: Comparison = _result(self._submit("compare", self.configs, sides, gate))
        return comparison

    def noise(self, sides: dict[Side, SideRows], gate: GateSettings) -> dict[str, Noise]:
        """An A/A comparison's figures per metric, for `promptgate calibrate`."""
        noise: dict[str, Noise] = _result(self._submit("noise", self.configs, sides, gate))
        return noise


def _settings_key(configs: MetricConfigs) -> str:
    return json.dumps({name: config.model_dump(mode="json") for name, config in configs.items()})


def _result(future: Future[T]) -> T:
    try:
        return future.result()
    except BrokenProcessPool as exc:
        stop_worker()
        raise CouldNotEvaluate(
            f"the scoring worker process died ({exc}); out of memory? See the log above"
        ) from exc
