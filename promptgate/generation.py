"""The calls of one gate run, in one round or several: one provider, one cache, one scorer.

The provider loads first, so the first request waits on nothing; the scoring worker then starts,
importing the metric libraries while calls are in flight (scoring.py), and `while_calling` runs
as the first calls start. Each answer is handed to the scorer as it arrives and stored in its
plan. Under adaptive sampling (sequential.py) later rounds reuse all of it: the open cache, the
provider's connections, the scorer's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from promptgate.cache import ResponseCache, default_cache_path, open_cache
from promptgate.config import Config
from promptgate.metrics.languages import Settled, settle_metrics
from promptgate.plan import PromptPlan
from promptgate.providers import make_provider
from promptgate.providers.base import ChatRequest, Completion, Provider
from promptgate.report.model import CallStats
from promptgate.request import GateRequest
from promptgate.runner import run_requests_sync
from promptgate.scoring import Scorer, Slot

ProgressStart = Callable[[int], Callable[[int], None]]
"""Called with the number of requests; returns the per-completion callback (done count)."""

#: A run reports at most this many distinct messages of given-up calls.
_MAX_FAILURES = 20


def plan_slots(plans: Sequence[PromptPlan]) -> list[Slot]:
    """Every request the plans hold, in plan, side, example and sample order."""
    return [
        Slot(index, side, example, sample)
        for index, plan in enumerate(plans)
        for side in plan.sides()
        for example, samples in enumerate(plan.requests[side])
        for sample in range(len(samples))
    ]


class Generation:
    """Makes the calls for the slots it is given, round after round, and keeps the counts."""

    def __init__(
        self,
        plans: list[PromptPlan],
        config: Config,
        request: GateRequest,
        repo_root: Path,
        progress: ProgressStart | None = None,
        while_calling: Callable[[], None] | None = None,
    ) -> None:
        self.plans = plans
        self.config = config
        self.request = request
        self.repo_root = repo_root
        self.progress = progress
        self.while_calling = while_calling
        self.stats = CallStats()
        self.failures: list[str] = []
        self.warnings: list[str] = []
        self.scorer: Scorer | None = None
        self._provider: Provider | None = None
        self._cache: ResponseCache | None = None
        for plan in plans:
            for side in plan.sides():
                plan.outputs.setdefault(side, [[] for _ in plan.requests[side]])

    def __enter__(self) -> Generation:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def run(self, slots: Sequence[Slot]) -> None:
        """Make the slots' calls, store each answer in its plan and score it; wait for scores."""
        if not slots:
            return
        requests = [self._request(slot) for slot in slots]
        scorer = self._start()
        plans = self.plans

        def score(index: int, text: str) -> None:
            slot = slots[index]
            scorer.add(slot, text, plans[slot.plan].examples[slot.example].expected)

        assert self._provider is not None
        outcome = run_requests_sync(
            requests,
            self._provider,
            self._cache,
            concurrency=self.config.provider.concurrency,
            max_retries=self.config.provider.max_retries,
            on_progress=self.progress(len(requests)) if self.progress else None,
            on_answer=score,
            cache_only=self.request.cache_only,
        )
        for slot, answer in zip(slots, outcome.answers, strict=True):
            self._store(slot, answer)
        self._count(outcome.stats, outcome.failures)
        scorer.finish()

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def _start(self) -> Scorer:
        """Provider, scorer and cache, on the first round."""
        if self.scorer is not None:
            return self.scorer
        self._provider = make_provider(self.config.provider)
        self.scorer = Scorer(
            self.config.metrics, [_settled(plan, self.config) for plan in self.plans]
        )
        if self.request.use_cache:
            path = self.request.cache_path or default_cache_path(self.repo_root)
            self._cache, problem = open_cache(path, self.repo_root)
            self.warnings += [problem] if problem else []
        if self.while_calling is not None:
            self.while_calling()
        return self.scorer

    def _request(self, slot: Slot) -> ChatRequest:
        return self.plans[slot.plan].requests[slot.side][slot.example][slot.sample]

    def _store(self, slot: Slot, answer: Completion | None) -> None:
        plan = self.plans[slot.plan]
        per_example = plan.outputs[slot.side][slot.example]
        per_example.extend([None] * (slot.sample + 1 - len(per_example)))
        per_example[slot.sample] = answer.text if answer is not None else None
        if answer is not None:
            plan.answers.setdefault(slot.side, []).append(answer)
            if answer.refusal is not None:
                plan.refusals.setdefault(slot.side, {}).setdefault(slot.example, answer.refusal)

    def _count(self, stats: CallStats, failures: list[str]) -> None:
        self.stats += stats
        for failure in failures:
            if failure not in self.failures and len(self.failures) < _MAX_FAILURES:
                self.failures.append(failure)


def generate(
    plans: list[PromptPlan],
    config: Config,
    request: GateRequest,
    repo_root: Path,
    progress: ProgressStart | None = None,
) -> tuple[CallStats, list[str], Scorer | None, list[str]]:
    """Every request of the plans in one round: the call counts, the calls given up, the
    scorer with every answer's rows (None when there was nothing to call), and warnings."""
    with Generation(plans, config, request, repo_root, progress) as generation:
        generation.run(plan_slots(plans))
    return generation.stats, generation.failures, generation.scorer, generation.warnings


def _settled(plan: PromptPlan, config: Config) -> Settled:
    """The metric settings its eval set's references settle (`auto`), and notes on its script."""
    return settle_metrics(config.metrics, [example.expected for example in plan.examples])
