"""Answers a batch of chat requests: from the cache, else from the provider, concurrently,
with retries, sending each distinct request (by cache key) once."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from promptgate.cache import ResponseCache
from promptgate.providers.base import ChatRequest, Completion, Provider, ProviderError
from promptgate.report.model import CallStats

RETRY_AFTER_CAP_S = 60.0
#: At most this many windows of successes between two probes above a limit a 429 set.
MAX_PATIENCE = 16
MAX_FAILURE_MESSAGES = 20

ProgressCallback = Callable[[int], None]
AnswerCallback = Callable[[int, str], None]
"""Called with (index into the requests, answer) for every answered request, cached or not."""


@dataclass
class RunOutcome:
    """What a run produced.

    `answers[i]` answers `requests[i]` (its text, token counts and latency); None means the
    call was given up. A cache hit or a duplicate of a request sent in this run is marked
    `cached` and carries the usage of the call that got it.
    `stats` always has `requested == cached + made + skipped`: every request is either
    answered without a call of its own (a cache hit, or a duplicate of a request sent in this
    run), or is one of the distinct requests sent, or was not sent because an earlier answer
    showed that no call could succeed (a fatal ProviderError: refused key, no quota). `failed`
    counts distinct requests given up, skipped ones included (so `failed <= made + skipped`);
    a failed request's duplicates are None in `outputs` as well.
    `failures` holds the distinct messages of given-up calls, at most 20.
    """

    answers: list[Completion | None]
    stats: CallStats
    failures: list[str] = field(default_factory=list)

    @property
    def outputs(self) -> list[str | None]:
        """The answers' texts."""
        return [answer.text if answer is not None else None for answer in self.answers]


class AdaptiveLimit:
    """At most `limit` calls in flight. A 429 lowers the limit to the calls still in flight (what
    the server is admitting); `limit x patience` successes in a row raise it by one, up to
    `maximum`. So a server that admits fewer calls than configured is not hammered with calls it
    turns away. Patience doubles with each new 429 (a burst of them counts once) and halves when
    a raise went through (no 429 before the next), so a limit found again and again is probed
    ever more rarely: each probe costs the call turned away a Retry-After wait, which at the end
    of a run is the run's tail.

    Waiters queue in order and a freed slot is handed to exactly one of them: with thousands of
    calls waiting, waking them all on every release (an `asyncio.Event`) cost O(calls²) wake-ups,
    which was most of the gate's CPU at N=1000.
    """

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError(f"concurrency must be at least 1, not {maximum}")
        self.maximum = maximum
        self.limit = maximum
        self.in_flight = 0
        self.lowest = maximum  # for reports and tests
        self._successes = 0
        self.patience = 1
        self._calm = False  # a success since the last 429 (so the next 429 is a new event)
        self._turned_away_since_raise = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, *, first: bool = False) -> None:
        """Wait for a slot; `first` jumps the queue (a retry, so it does not end up last)."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if first:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        try:
            await waiter  # `_hand_over` counted the slot as ours before waking us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.in_flight -= 1  # woken and cancelled at once: give the slot back
                self._hand_over()
            elif waiter in self._waiters:  # not yet reached by `_hand_over`
                self._waiters.remove(waiter)
            raise

    def release(self, *, overloaded: bool) -> None:
        self.in_flight -= 1
        if overloaded:
            self.limit = max(1, min(self.limit, self.in_flight))
            self.lowest = min(self.lowest, self.limit)
            if self._calm:  # the first 429 since a success: a new congestion event
                self.patience = min(self.patience * 2, MAX_PATIENCE)
            self._calm = False
            self._turned_away_since_raise = True
            self._successes = 0
        else:
            self._calm = True
            self._successes += 1
            if self._successes >= self.limit * self.patience and self.limit < self.maximum:
                if not self._turned_away_since_raise:  # the last raise went through
                    self.patience = max(1, self.patience // 2)
                self._turned_away_since_raise = False
                self.limit += 1
                self._successes = 0
        self._hand_over()

    def _hand_over(self) -> None:
        """Give each free slot to the longest-waiting caller."""
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)


class _Calls:
    """Sends requests with bounded concurrency and retries, and tallies what happened."""

    def __init__(
        self,
        provider: Provider,
        *,
        concurrency: int,
        max_retries: int,
        backoff_base_s: float,
        backoff_max_s: float,
    ) -> None:
        self.provider = provider
        self.slots = AdaptiveLimit(concurrency)
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.random = random.Random()
        self.retried = 0
        self.failed = 0
        self.skipped = 0
        self.failures: dict[str, None] = {}  # insertion-ordered set
        self.stop_reason: str | None = None  # set by a fatal error: send nothing more

    async def answer(self, request: ChatRequest) -> Completion | None:
        attempt = 1
        while True:
            # The slot is held for the call only, not while backing off. A retry goes ahead of
            # calls not yet sent: at the back of the queue it would finish the run last.
            await self.slots.acquire(first=attempt > 1)
            error = None
            try:
                if self.stop_reason is not None:
                    self.skipped += 1
                    self._give_up(self.stop_reason)
                    return None
                return await self.provider.complete(request)
            except ProviderError as exc:
                error = exc
            finally:
                self.slots.release(overloaded=error is not None and error.overloaded)
            if error.fatal and self.stop_reason is None:
                self.stop_reason = f"not sent: an earlier call showed none can succeed ({error})"
            if not error.retryable:
                self._give_up(f"{error} (not retried)")
                return None
            if attempt > self.max_retries:
                tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                self._give_up(f"{error} (gave up after {tries})")
                return None
            await asyncio.sleep(self._backoff(attempt, error.retry_after))
            self.retried += 1
            attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, but never sooner than the server asked."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** min(attempt - 1, 30))
        delay = self.random.uniform(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
        return delay

    def _give_up(self, message: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_FAILURE_MESSAGES:
            self.failures[message] = None


async def run_requests(
    requests: Sequence[ChatRequest],
    provider: Provider,
    cache: ResponseCache | None,
    *,
    concurrency: int,
    max_retries: int,
    on_progress: ProgressCallback | None = None,
    on_answer: AnswerCallback | None = None,
    cache_only: str | None = None,
    backoff_base_s: float = 0.5,
    backoff_max_s: float = 20.0,
) -> RunOutcome:
    """Answer every request; never raises for a failed call (see RunOutcome.failures).

    `cache_only`, when set, is why nothing may be sent (a merge of shards): every request the
    cache cannot answer is given up with that message instead of being sent.

    Cache lookups happen in one batch before any call; answers are written to the cache as they
    arrive and flushed when the run ends, also when it is cancelled. `on_progress(n_done)` gets
    the running count of requests answered or given up (cache hits are reported at once).
    The caller owns `provider` and `cache`: this function closes neither.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    identity = provider.identity
    positions: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        positions.setdefault(request.cache_key(identity), []).append(index)

    answers: list[Completion | None] = [None] * len(requests)
    hits = cache.get_many(positions) if cache is not None else {}
    done = 0
    for key, hit in hits.items():
        for index in positions[key]:
            answers[index] = hit
            if on_answer is not None:
                on_answer(index, hit.text)
        done += len(positions[key])
    to_send = [(key, indices) for key, indices in positions.items() if key not in hits]
    if done and on_progress is not None:
        on_progress(done)

    calls = _Calls(
        provider,
        concurrency=concurrency,
        max_retries=max_retries,
        backoff_base_s=backoff_base_s,
        backoff_max_s=backoff_max_s,
    )
    if cache_only is not None:
        calls.stop_reason = cache_only

    async def send(key: str, indices: list[int]) -> None:
        nonlocal done
        answer = await calls.answer(requests[indices[0]])
        if answer is not None:
            # The first request made the call; its duplicates got the answer without one.
            duplicate = answer.model_copy(update={"cached": True}) if len(indices) > 1 else answer
            for position, index in enumerate(indices):
                answers[index] = answer if position == 0 else duplicate
                if on_answer is not None:
                    on_answer(index, answer.text)
            if cache is not None:
                cache.put(key, answer)
        done += len(indices)
        if on_progress is not None:
            on_progress(done)

    try:
        async with asyncio.TaskGroup() as group:
            for key, indices in to_send:
                group.create_task(send(key, indices))
    except BaseExceptionGroup as failed:
        # Calls fail into RunOutcome, so a task raises only for the cache (a GateError) or a
        # bug; surface it as itself, so a GateError still reaches the edge as an exit code.
        raise failed.exceptions[0]  # noqa: B904 - the group is kept as the context
    finally:
        if cache is not None:
            cache.flush()

    stats = CallStats(
        requested=len(requests),
        cached=len(requests) - len(to_send),
        made=len(to_send) - calls.skipped,
        skipped=calls.skipped,
        retried=calls.retried,
        failed=calls.failed,
    )
    return RunOutcome(answers=answers, stats=stats, failures=list(calls.failures))


def run_requests_sync(
    requests: Sequence[ChatRequest],
    provider: Provider,
    cache: ResponseCache | None,
    *,
    concurrency: int,
    max_retries: int,
    on_progress: ProgressCallback | None = None,
    on_answer: AnswerCallback | None = None,
    cache_only: str | None = None,
    backoff_base_s: float = 0.5,
    backoff_max_s: float = 20.0,
) -> RunOutcome:
    """`run_requests` in a fresh event loop.

    Connections cannot outlive the loop that opened them, so this wrapper calls
    `provider.aclose()` before its loop ends. The built-in providers reopen connections if used
    again, and closing twice is harmless, so the caller may still close the provider itself.
    """

    async def run_then_release_connections() -> RunOutcome:
        try:
            return await run_requests(
                requests,
                provider,
                cache,
                concurrency=concurrency,
                max_retries=max_retries,
                on_progress=on_progress,
                on_answer=on_answer,
                cache_only=cache_only,
                backoff_base_s=backoff_base_s,
                backoff_max_s=backoff_max_s,
            )
        finally:
            await provider.aclose()

    return asyncio.run(run_then_release_connections())
