"""The runner against a real OpenAI-compatible server on a local socket (tests/llm_stub.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from llm_stub import Fault, LLMStub

from promptgate.cache import ResponseCache
from promptgate.config import ProviderConfig
from promptgate.errors import CouldNotEvaluate
from promptgate.providers import ChatMessage, ChatRequest, Provider, make_provider
from promptgate.report.model import CallStats
from promptgate.runner import AdaptiveLimit, RunOutcome, run_requests, run_requests_sync

KEY_ENV = "PROMPTGATE_TEST_API_KEY"
BACKOFF_S = 0.001  # keeps retries fast; a server's Retry-After still counts


def chat(text: str, *, sample_index: int = 0) -> ChatRequest:
    return ChatRequest(
        model="stub-model",
        messages=(ChatMessage(role="user", content=text),),
        temperature=0.0,
        max_tokens=16,
        sample_index=sample_index,
    )


def questions(n: int) -> list[ChatRequest]:
    return [chat(f"question {i}") for i in range(n)]


def stub_provider(stub: LLMStub, **settings: object) -> Provider:
    config = {"base_url": stub.base_url, "api_key_env": KEY_ENV, "timeout_s": 5, **settings}
    return make_provider(ProviderConfig.model_validate(config))


def run(
    requests: list[ChatRequest],
    provider: Provider,
    cache: ResponseCache | None = None,
    *,
    concurrency: int = 4,
    max_retries: int = 3,
    progress: list[int] | None = None,
) -> RunOutcome:
    return run_requests_sync(
        requests,
        provider,
        cache,
        concurrency=concurrency,
        max_retries=max_retries,
        on_progress=progress.append if progress is not None else None,
        backoff_base_s=BACKOFF_S,
        backoff_max_s=10 * BACKOFF_S,
    )


def test_every_request_gets_its_own_answer_in_order(llm_stub: LLMStub) -> None:
    progress: list[int] = []
    outcome = run(questions(20), stub_provider(llm_stub), progress=progress)

    assert outcome.outputs == [f"question {i}" for i in range(20)]
    assert outcome.stats.model_dump() == {
        "requested": 20,
        "cached": 0,
        "made": 20,
        "retried": 0,
        "failed": 0,
        "skipped": 0,
    }
    assert outcome.failures == [] and outcome.stats.failed == 0
    assert progress == list(range(1, 21))


def test_nothing_to_ask_makes_no_calls(llm_stub: LLMStub) -> None:
    outcome = run([], stub_provider(llm_stub))
    assert outcome.outputs == [] and outcome.stats == CallStats()
    assert llm_stub.request_count == 0


def test_a_429_with_retry_after_is_waited_out_then_answered(llm_stub: LLMStub) -> None:
    llm_stub.script(Fault.http_error(429, retry_after="1"))
    started = time.monotonic()
    outcome = run([chat("hello")], stub_provider(llm_stub))

    assert time.monotonic() - started >= 0.95  # the server's 1 s, not the 1 ms backoff
    assert outcome.outputs == ["hello"]
    assert (outcome.stats.retried, outcome.stats.failed) == (1, 0)
    assert llm_stub.request_count == 2


def test_429s_without_retry_after_and_server_errors_are_retried_until_answered(
    llm_stub: LLMStub,
) -> None:
    llm_stub.script(
        Fault.http_error(429),
        Fault.http_error(500),
        Fault.http_error(502),
        Fault.http_error(503),
    )
    outcome = run(questions(3), stub_provider(llm_stub))

    assert outcome.outputs == ["question 0", "question 1", "question 2"]
    assert (outcome.stats.made, outcome.stats.retried, outcome.stats.failed) == (3, 4, 0)
    assert llm_stub.request_count == 7


def test_timeouts_and_dropped_connections_are_retried_until_answered(llm_stub: LLMStub) -> None:
    llm_stub.script(Fault.hang(10), Fault.reset(), Fault.close())
    outcome = run(questions(2), stub_provider(llm_stub, timeout_s=0.3))

    assert outcome.outputs == ["question 0", "question 1"]
    assert (outcome.stats.retried, outcome.stats.failed) == (3, 0)


def test_garbled_or_empty_answers_are_retried_until_answered(llm_stub: LLMStub) -> None:
    llm_stub.script(Fault.malformed_json(), Fault.no_choices(), Fault.empty_content())
    outcome = run(questions(2), stub_provider(llm_stub))

    assert outcome.outputs == ["question 0", "question 1"]
    assert (outcome.stats.retried, outcome.stats.failed) == (3, 0)


def test_a_flaky_server_is_survived_without_a_single_failed_call(llm_stub: LLMStub) -> None:
    llm_stub.fail_randomly(0.3, seed=7, status=503)
    outcome = run(questions(60), stub_provider(llm_stub), concurrency=8, max_retries=10)

    assert outcome.outputs == [f"question {i}" for i in range(60)]
    assert outcome.stats.failed == 0
    assert outcome.stats.retried > 0
    assert llm_stub.request_count == 60 + outcome.stats.retried


def test_a_server_that_always_fails_is_given_up_on_with_a_useful_message(
    llm_stub: LLMStub,
) -> None:
    llm_stub.fail_always = 503
    outcome = run(questions(3), stub_provider(llm_stub), max_retries=2)

    assert outcome.outputs == [None, None, None]
    assert outcome.stats.failed > 0
    assert (outcome.stats.made, outcome.stats.retried, outcome.stats.failed) == (3, 6, 3)
    assert llm_stub.request_count == 9
    [message] = outcome.failures  # the same failure three times is reported once
    assert "HTTP 503" in message
    assert llm_stub.base_url in message
    assert "gave up after 3 attempts" in message


def test_a_rejected_key_is_not_retried_and_never_shown(
    llm_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-live-DO-NOT-LEAK-91c2"
    monkeypatch.setenv(KEY_ENV, secret)
    llm_stub.api_key = "the-right-key"  # the stub's 401 body quotes the key it was sent
    outcome = run(questions(3), stub_provider(llm_stub), max_retries=5)

    assert outcome.outputs == [None, None, None]
    assert (outcome.stats.retried, outcome.stats.failed) == (0, 3)
    assert llm_stub.request_count == 3
    [message] = outcome.failures
    assert "HTTP 401" in message and f"${KEY_ENV}" in message and "not retried" in message
    assert secret not in repr(outcome)


def test_a_rejected_key_stops_the_run_instead_of_failing_every_call_one_by_one(
    llm_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    llm_stub.api_key = "the-right-key"
    outcome = run(questions(200), stub_provider(llm_stub), concurrency=4, max_retries=5)

    assert outcome.outputs == [None] * 200
    sent = llm_stub.request_count
    assert sent <= 4  # at most the calls already in flight when the first 401 came back
    stats = outcome.stats
    assert (stats.made, stats.skipped, stats.failed, stats.retried) == (sent, 200 - sent, 200, 0)
    assert stats.requested == stats.cached + stats.made + stats.skipped
    assert any(
        m.startswith("not sent: an earlier call showed none can succeed") for m in outcome.failures
    )


def test_a_refused_request_does_not_stop_the_others(llm_stub: LLMStub) -> None:
    llm_stub.script(Fault.http_error(400))  # one bad request (say, too long a prompt)
    outcome = run(questions(20), stub_provider(llm_stub), concurrency=4)
    assert outcome.stats.failed == 1 and outcome.stats.skipped == 0
    assert sum(o is not None for o in outcome.outputs) == 19


def test_identical_requests_are_sent_once(llm_stub: LLMStub) -> None:
    a, b, c = chat("alpha"), chat("beta"), chat("gamma")
    a_again = chat("alpha", sample_index=1)  # another sample is another request
    outcome = run([a, b, a, a, b, c, a_again], stub_provider(llm_stub))

    assert outcome.outputs == ["alpha", "beta", "alpha", "alpha", "beta", "gamma", "alpha"]
    assert (outcome.stats.requested, outcome.stats.cached, outcome.stats.made) == (7, 3, 4)
    assert llm_stub.request_count == 4


def test_a_second_run_is_answered_from_the_cache_without_calls(
    llm_stub: LLMStub, tmp_path: Path
) -> None:
    provider = stub_provider(llm_stub)
    requests = questions(30)
    with ResponseCache(tmp_path / "cache.sqlite3") as cache:
        first = run(requests, provider, cache)
    assert llm_stub.request_count == 30

    progress: list[int] = []
    with ResponseCache(tmp_path / "cache.sqlite3") as cache:
        second = run(requests, provider, cache, progress=progress)

    assert llm_stub.request_count == 30  # zero new calls
    assert second.outputs == first.outputs
    assert (second.stats.cached, second.stats.made) == (30, 0)
    assert progress == [30]


def test_answers_are_cached_per_endpoint(llm_stub: LLMStub, tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "cache.sqlite3") as cache:
        run(questions(5), make_provider(ProviderConfig(kind="offline")), cache)
        outcome = run(questions(5), stub_provider(llm_stub), cache)
    assert outcome.stats.made == 5
    assert llm_stub.request_count == 5


def test_given_up_calls_are_not_cached_and_are_tried_again_next_run(
    llm_stub: LLMStub, tmp_path: Path
) -> None:
    provider = stub_provider(llm_stub)
    with ResponseCache(tmp_path / "cache.sqlite3") as cache:
        llm_stub.fail_always = 500
        failed = run(questions(4), provider, cache, max_retries=0)
        llm_stub.fail_always = None
        recovered = run(questions(4), provider, cache)

    assert failed.outputs == [None] * 4
    assert recovered.outputs == [f"question {i}" for i in range(4)]
    assert (recovered.stats.cached, recovered.stats.made) == (0, 4)


def test_a_cache_that_cannot_be_written_stops_the_run_with_a_gate_error(
    llm_stub: LLMStub, tmp_path: Path
) -> None:
    path = tmp_path / "cache.sqlite3"
    with (
        ResponseCache(path, flush_every=1, busy_timeout_s=0.1) as cache,
        closing(sqlite3.connect(path, isolation_level=None)) as other_process,
    ):
        other_process.execute("BEGIN IMMEDIATE")  # holds the write lock throughout
        with pytest.raises(CouldNotEvaluate) as raised:
            run(questions(3), stub_provider(llm_stub), cache)
        other_process.execute("ROLLBACK")
    assert "database is locked" in str(raised.value)
    assert str(path) in str(raised.value)


def test_no_more_calls_are_in_flight_than_the_concurrency(llm_stub: LLMStub) -> None:
    llm_stub.latency_s = 0.03
    llm_stub.max_in_flight = 4  # beyond it the stub answers 429
    llm_stub.in_flight_retry_after = "0"
    outcome = run(questions(32), stub_provider(llm_stub, concurrency=4), concurrency=4)

    assert outcome.stats.failed == 0
    assert llm_stub.max_in_flight_seen == 4
    assert outcome.stats.retried == 0  # never over the limit, so never a 429


def test_a_server_that_admits_fewer_calls_is_met_at_its_limit_not_hammered(
    llm_stub: LLMStub,
) -> None:
    llm_stub.latency_s = 0.02
    llm_stub.max_in_flight = 4  # the server's limit; we are configured for 16
    llm_stub.in_flight_retry_after = "0.05"
    outcome = run(questions(120), stub_provider(llm_stub, concurrency=16), concurrency=16)

    assert outcome.stats.failed == 0 and all(outcome.outputs)
    # A fixed 16 would see about three 429s per answer (12 of every 16 turned away); adapting,
    # the limit falls to 4 at the first burst (12 turned away), then probes one above it ever
    # more rarely (a probe every 4, 8, 16, 32 answers: 4 more). Probing every window was 40.
    rejected = llm_stub.request_count - 120
    assert rejected == outcome.stats.retried
    assert rejected <= 20, f"{rejected} calls turned away for 120 answers"


def test_the_adaptive_limit_falls_to_what_is_admitted_and_creeps_back() -> None:
    async def scenario() -> None:
        limit = AdaptiveLimit(8)
        for _ in range(8):
            await limit.acquire()
        for _ in range(3):  # the server turns three away: five were admitted
            limit.release(overloaded=True)
        assert (limit.limit, limit.in_flight) == (5, 5)
        for _ in range(5):
            limit.release(overloaded=False)
        assert limit.limit == 6  # a window of successes: one more
        for _ in range(6):
            await limit.acquire()
        blocked = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)
        assert not blocked.done()  # a seventh must wait for room
        limit.release(overloaded=False)
        await asyncio.wait_for(blocked, 1)

    asyncio.run(scenario())


def test_a_limit_found_again_is_probed_ever_more_rarely_and_a_probe_that_passes_speeds_up() -> None:
    async def scenario() -> None:
        limit = AdaptiveLimit(8)

        async def fill() -> None:
            while limit.in_flight < limit.limit:
                await limit.acquire()

        async def successes_until_raise() -> int:
            before, count = limit.limit, 0
            while limit.limit == before:
                limit.release(overloaded=False)
                count += 1
                await fill()
            return count

        await fill()
        for _ in range(4):  # the server admits 4: a burst of four 429s is one event
            limit.release(overloaded=True)
        assert (limit.limit, limit.patience) == (4, 1)
        windows = []
        for _ in range(4):
            windows.append(await successes_until_raise())  # raised to 5, and the probe...
            limit.release(overloaded=True)  # ...is turned away: back to 4, twice the patience
        assert windows == [4, 8, 16, 32]
        assert limit.patience == 16
        await fill()
        windows = [await successes_until_raise() for _ in range(3)]  # the server now admits more
        # a raise that went through is known at the next one, which halves the wait after it
        assert windows == [4 * 16, 5 * 16, 6 * 8]

    asyncio.run(scenario())


def test_a_freed_slot_wakes_one_waiter_in_arrival_order() -> None:
    """Waking every waiter on each release made N=1000 cost O(N²) wake-ups."""

    async def scenario() -> None:
        limit = AdaptiveLimit(2)
        await limit.acquire()
        await limit.acquire()
        order: list[int] = []

        async def wait(number: int) -> None:
            await limit.acquire()
            order.append(number)

        waiters = [asyncio.ensure_future(wait(n)) for n in range(50)]
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        scheduled = 0
        call_soon = loop.call_soon

        def counting_call_soon(*args: Any, **kwargs: Any) -> asyncio.Handle:
            nonlocal scheduled
            scheduled += 1
            return call_soon(*args, **kwargs)

        loop.call_soon = counting_call_soon  # type: ignore[method-assign]
        limit.release(overloaded=False)
        for _ in range(3):
            await asyncio.sleep(0)
        loop.call_soon = call_soon  # type: ignore[method-assign]
        assert order == [0] and limit.in_flight == 2
        assert scheduled < 10, f"one release woke {scheduled} callbacks, not one waiter"
        limit.release(overloaded=False)
        limit.release(overloaded=False)
        for _ in range(3):
            await asyncio.sleep(0)
        assert order == [0, 1, 2] and limit.in_flight == 2

        async def retry() -> None:
            await limit.acquire(first=True)
            order.append(-1)

        waiters.append(asyncio.ensure_future(retry()))
        await asyncio.sleep(0)
        limit.release(overloaded=False)
        for _ in range(3):
            await asyncio.sleep(0)
        assert order == [0, 1, 2, -1]  # a retry goes ahead of the calls not yet sent
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)

    asyncio.run(scenario())


def test_a_cancelled_waiter_neither_keeps_nor_loses_a_slot() -> None:
    async def scenario() -> None:
        limit = AdaptiveLimit(1)
        await limit.acquire()
        queued = asyncio.ensure_future(limit.acquire())
        woken_then_cancelled = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)
        queued.cancel()  # cancelled while still waiting
        await asyncio.gather(queued, return_exceptions=True)
        limit.release(overloaded=False)  # hands the slot to the second waiter...
        woken_then_cancelled.cancel()  # ...which is cancelled before it runs: slot returned
        await asyncio.gather(woken_then_cancelled, return_exceptions=True)
        assert limit.in_flight == 0
        await asyncio.wait_for(limit.acquire(), 1)  # the slot is free again
        assert limit.in_flight == 1

    asyncio.run(scenario())


def test_concurrent_calls_overlap_their_latency(llm_stub: LLMStub) -> None:
    llm_stub.latency_s = 0.2
    started = time.monotonic()
    outcome = run(questions(32), stub_provider(llm_stub, concurrency=32), concurrency=32)
    elapsed = time.monotonic() - started

    assert outcome.stats.failed == 0
    assert llm_stub.max_in_flight_seen == 32
    assert elapsed < 2.0, f"32 calls of 0.2 s at concurrency 32 took {elapsed:.1f}s"


def test_a_concurrency_of_one_sends_calls_one_after_another(llm_stub: LLMStub) -> None:
    llm_stub.latency_s = 0.01
    outcome = run(questions(8), stub_provider(llm_stub), concurrency=1)
    assert outcome.stats.failed == 0
    assert llm_stub.max_in_flight_seen == 1


def test_an_interrupted_run_keeps_the_answers_it_already_had(
    llm_stub: LLMStub, tmp_path: Path
) -> None:
    llm_stub.latency_s = 0.05
    path = tmp_path / "cache.sqlite3"
    provider = stub_provider(llm_stub)

    async def interrupted() -> None:
        with ResponseCache(path) as cache:  # flushes every 64 answers: more than we will get
            run_all = run_requests(questions(100), provider, cache, concurrency=2, max_retries=0)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(run_all, timeout=0.4)
            with closing(sqlite3.connect(path)) as db:  # what a later run would find
                rows = db.execute("SELECT key, text FROM completions").fetchall()
            assert 2 <= len(rows) < 100  # flushed on the way out, before the cache closed
            assert {text for _, text in rows} <= {f"question {i}" for i in range(100)}
        await provider.aclose()

    asyncio.run(interrupted())


def test_many_calls_cost_little_beyond_the_server(llm_stub: LLMStub) -> None:
    """A guard against per-call overhead: a Nagle stall alone would cost 20 s here.

    CPU time (client and stub together) is the sharper bound; wall time also counts whatever
    else the machine is doing.
    """
    provider = stub_provider(llm_stub, concurrency=8)
    started, cpu_started = time.monotonic(), time.process_time()
    outcome = run(questions(500), provider, concurrency=8)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started

    assert outcome.stats.failed == 0 and outcome.stats.made == 500
    assert cpu < 4, f"500 calls used {cpu:.1f}s of CPU"
    assert elapsed < 15, f"500 calls took {elapsed:.1f}s"
