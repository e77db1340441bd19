"""A deterministic OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

By default it answers like promptgate's offline provider (the last user message, whitespace
collapsed, cut to max_tokens words), so a test can predict every output. Faults are scripted
for the next requests, and every request is recorded:

    with LLMStub(latency_s=0.01) as stub:
        stub.script(Fault.http_error(429, retry_after="1"), Fault.reset())
        ...  # point a provider at stub.base_url
        assert stub.request_count == 3

With `sampling_noise` > 0 it plays a sampling model instead (see `noisy_answer`): it restates the
prompt's last line, and at temperature T > 0 drops or replaces each word with probability
`sampling_noise * T`, from a random stream seeded by (`noise_salt`, the request body, how many
times this body was seen since the salt was set). Set a new salt (`reseed`, or
`StubProcess.reseed`) and the same requests draw fresh, reproducible noise. A line such as
`[stub-regression drop=0.2]` in the prompt is a systematic regression: every word is also
dropped with that probability, at any temperature.

It serves HTTP/1.1 with keep-alive from an asyncio loop in a background thread: real sockets,
any number of concurrent requests, and little enough CPU per request that it does not distort
a benchmark of the client running in the same process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal

Reply = Callable[[list[dict[str, Any]], dict[str, Any]], str]
FaultKind = Literal[
    "http_error", "malformed_json", "no_choices", "empty_content", "reset", "close", "hang"
]
CHAT_PATH = "/v1/chat/completions"
MAX_HEADER_BYTES = 64 * 1024
#: A prompt line that makes the noisy stub drop every answer word with this extra probability.
REGRESSION_MARKER = re.compile(r"\[stub-regression drop=(\d*\.?\d+)\]")
#: Words the noisy stub puts in place of a replaced word (none is likely to be in a reference).
REPLACEMENTS = (
    "basically", "somewhat", "really", "perhaps", "overall", "notably", "indeed", "thing",
    "stuff", "various", "certain", "kind", "sort", "quite", "rather", "maybe",
)  # fmt: skip
#: Per-word perturbation probability is capped here, so an answer keeps some of its words.
MAX_NOISE_PROBABILITY = 0.9


def echo(messages: list[dict[str, Any]], max_tokens: int) -> str:
    """What the offline provider answers, written independently so tests can cross-check."""
    user_turns = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    last = str(user_turns[-1].get("content", "")) if user_turns else ""
    return " ".join(last.split()[:max_tokens])


def regression_strength(prompt: str) -> float:
    """The drop probability of the prompt's regression marker, 0 without one."""
    found = REGRESSION_MARKER.search(prompt)
    return min(1.0, float(found.group(1))) if found else 0.0


def noisy_answer(
    messages: list[dict[str, Any]],
    *,
    temperature: float,
    max_tokens: int,
    sampling_noise: float,
    rng: random.Random,
) -> str:
    """A sampling model's answer: the last line of the last user message, restated.

    The lines above it are instructions; the model follows none of them but the regression
    marker, so rewording an instruction changes nothing but the noise. At temperature T each
    word is independently dropped (half the time) or replaced by a filler word (the other half)
    with probability min(sampling_noise * T, 0.9); a marker `[stub-regression drop=q]` first
    drops each word with probability q. The answer is never empty (an empty completion is a
    fault the client retries): when every word went, the first one stays.
    """
    user_turns = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    prompt = str(user_turns[-1].get("content", "")) if user_turns else ""
    lines = [line for line in prompt.splitlines() if line.strip()]
    words = lines[-1].split() if lines else []
    drop = regression_strength(prompt)
    noise = min(max(sampling_noise * temperature, 0.0), MAX_NOISE_PROBABILITY)
    kept = []
    for word in words:
        if drop and rng.random() < drop:
            continue
        if noise:
            draw = rng.random()
            if draw < noise / 2:
                continue
            if draw < noise:
                word = rng.choice(REPLACEMENTS)
        kept.append(word)
    if not kept and words:
        kept = words[:1]
    return " ".join(kept[:max_tokens])


def noise_seed(salt: str, body: dict[str, Any], occurrence: int) -> int:
    """The noisy stub's seed for one request: its salt, its body, and which repeat it is."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    digest = hashlib.blake2b(f"{salt}\0{occurrence}\0{canonical}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


@dataclass(frozen=True)
class Fault:
    """How the stub misbehaves for one request."""

    kind: FaultKind
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    seconds: float = 0.0

    @classmethod
    def http_error(
        cls,
        status: int,
        *,
        retry_after: str | None = None,
        body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Answer `status`, with an OpenAI-style error body unless `body` is given."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        return cls("http_error", status=status, headers=tuple(extra.items()), body=body)

    @classmethod
    def malformed_json(cls) -> Fault:
        """200 with a body that is not JSON."""
        return cls("malformed_json")

    @classmethod
    def no_choices(cls) -> Fault:
        """200 with valid JSON but no `choices`."""
        return cls("no_choices")

    @classmethod
    def empty_content(cls) -> Fault:
        """200 with a well-formed completion whose content is empty."""
        return cls("empty_content")

    @classmethod
    def reset(cls) -> Fault:
        """Abort the connection (TCP RST) without an answer."""
        return cls("reset")

    @classmethod
    def close(cls) -> Fault:
        """Close the connection cleanly without an answer."""
        return cls("close")

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Say nothing for `seconds` (make it longer than the client's timeout), then close."""
        return cls("hang", seconds=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or None when the body was not JSON


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class LLMStub:
    """The server. Attributes may be changed while it runs; they apply to the next request."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        reply: Reply | None = None,
        fail_always: int | None = None,
        max_in_flight: int | None = None,
        in_flight_retry_after: str = "1",
        api_key: str | None = None,
        sampling_noise: float = 0.0,
        noise_salt: str = "",
        azure: AzureRoute | None = None,
        anthropic: bool = False,
    ) -> None:
        #: Anthropic's Messages API instead of chat completions (its route, headers, bodies)
        self.anthropic = anthropic
        #: None: OpenAI's route and bearer key; else Azure OpenAI's route and `api-key` header
        self.azure = azure
        self.latency_s = latency_s
        self.reply = reply
        #: > 0: answer with `noisy_answer` (per-word noise probability at temperature 1)
        self.sampling_noise = sampling_noise
        self.fail_always = fail_always  # answer every request with this status
        self.max_in_flight = max_in_flight  # beyond it: 429 with Retry-After
        self.in_flight_retry_after = in_flight_retry_after
        self.api_key = api_key  # when set, any other bearer token gets 401
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight_seen = 0
        self._connections_opened = 0
        #: time.monotonic() when the first request since the start (or a reset) arrived
        self.first_request_at: float | None = None
        #: time.monotonic() when the last answer so far was sent
        self.last_answer_at: float | None = None
        self._failure_rate = 0.0
        self._failure_status = 500
        self._random = random.Random(0)
        self._completions = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._noise_salt = noise_salt
        self._occurrences: dict[str, int] = {}  # request body -> times seen under this salt

    # -- control -------------------------------------------------------------------------
    def start(self) -> LLMStub:
        if self._thread is not None:
            raise RuntimeError("the stub is already running")
        loop = asyncio.new_event_loop()
        server = loop.run_until_complete(
            asyncio.start_server(self._serve_connection, "127.0.0.1", 0, backlog=256)
        )
        host, port = server.sockets[0].getsockname()[:2]
        self._address = (host, port)
        self._loop = loop
        self._server = server
        self._thread = threading.Thread(target=loop.run_forever, name="llm-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        future.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop, self._thread, self._address = None, None, None

    async def _shutdown(self) -> None:
        self._server.close()
        for task in list(self._handlers):  # also wakes requests sleeping for latency or a hang
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> LLMStub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """OpenAI's base URL; for Azure, the resource's endpoint (`/openai/...` follows)."""
        if self._address is None:
            raise RuntimeError("the stub is not running")
        host, port = self._address
        return f"http://{host}:{port}" + ("" if self.azure or self.anthropic else "/v1")

    def script(self, *faults: Fault) -> None:
        """Misbehave for the next requests, one fault each, in arrival order."""
        with self._lock:
            self._faults.extend(faults)

    def fail_randomly(self, rate: float, *, seed: int = 0, status: int = 500) -> None:
        """Answer a seeded random `rate` of requests with `status` (after scripted faults)."""
        with self._lock:
            self._failure_rate = rate
            self._failure_status = status
            self._random = random.Random(seed)

    def reseed(self, salt: str) -> None:
        """Draw the noisy stub's answers from a new salt (as if a new run of the model)."""
        with self._lock:
            self._noise_salt = salt
            self._occurrences.clear()

    def forget_requests(self) -> None:
        """Drop the recorded requests: a stub process serving a long benchmark would otherwise
        hold every request it ever served (gigabytes over 1000 simulated PRs)."""
        with self._lock:
            self._requests.clear()

    def reset(self) -> None:
        """Forget recorded requests, pending faults and the high-water marks."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._max_in_flight_seen = 0
            self._connections_opened = 0
            self.first_request_at = None

    # -- observations --------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def max_in_flight_seen(self) -> int:
        with self._lock:
            return self._max_in_flight_seen

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._connections_opened

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    # -- serving -------------------------------------------------------------------------
    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        with self._lock:
            self._connections_opened += 1
        try:
            while await self._serve_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the stub is stopping
        finally:
            self._handlers.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    async def _serve_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; False when the connection is done."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        raw = await reader.readexactly(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(method=method, path=path, headers=headers, body=body)
        keep_alive = headers.get("connection", "").lower() != "close"

        with self._lock:
            if not self._requests:
                self.first_request_at = time.monotonic()  # system-wide clock: comparable
            self._requests.append(request)
            self._in_flight += 1
            self._max_in_flight_seen = max(self._max_in_flight_seen, self._in_flight)
            over_capacity = self.max_in_flight is not None and self._in_flight > self.max_in_flight
        try:
            outcome = await self._respond(request, over_capacity)
        finally:
            with self._lock:
                self._in_flight -= 1

        if isinstance(outcome, _Response):
            writer.write(_encode(outcome, keep_alive))
            await writer.drain()
            self.last_answer_at = time.monotonic()
            return keep_alive
        if outcome.kind == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # with linger 0 the kernel sends RST, not FIN
            return False
        if outcome.kind == "hang":
            await asyncio.sleep(outcome.seconds)
        writer.close()  # "close" and the end of a "hang": FIN without an answer
        return False

    async def _respond(self, request: RecordedRequest, over_capacity: bool) -> _Response | Fault:
        if self.anthropic:
            return await self._respond_as_anthropic(request, over_capacity)
        chat_path = CHAT_PATH if self.azure is None else self.azure.path
        if request.method != "POST" or request.path != chat_path:
            if self.azure is not None:  # Azure's answer to an unknown deployment or version
                return _azure_error(
                    404,
                    "DeploymentNotFound",
                    "The API deployment for this resource does not exist.",
                )
            return _error(404, f"no route {request.method} {request.path}")
        if over_capacity:
            retry_after = (("Retry-After", self.in_flight_retry_after),)
            return _error(429, "too many requests in flight", retry_after)
        if self.api_key is not None and self.azure is not None:
            if request.headers.get("api-key", "") != self.api_key:
                return _azure_error(
                    401,
                    "401",
                    "Access denied due to invalid subscription key or wrong API endpoint.",
                )
        elif self.api_key is not None:
            presented = request.headers.get("authorization", "")
            if presented != f"Bearer {self.api_key}":
                # Real servers quote (part of) the key they got: the client must not repeat it.
                return _error(
                    401, f"Incorrect API key provided: {presented.removeprefix('Bearer ')}."
                )
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        if not isinstance(request.body, dict):
            return _error(400, "the body must be a JSON object")
        body = request.body
        if refused := _reasoning_model_refusal(body):
            return refused
        if CONTENT_FILTER_PROMPT in json.dumps(body.get("messages")):
            return _content_filter_error()
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            if fault is None and self._failure_rate and self._random.random() < self._failure_rate:
                fault = Fault.http_error(self._failure_status)
            self._completions += 1
            number = self._completions
        if fault is None and self.fail_always is not None:
            fault = Fault.http_error(self.fail_always)
        if fault is None:
            messages = body.get("messages") or []
            if self.reply is not None:
                text = self.reply(messages, body)
            elif self.sampling_noise > 0:
                text = self._noisy_reply(messages, body)
            else:
                text = echo(messages, _token_limit(body))
            if CONTENT_FILTER_ANSWER in json.dumps(body.get("messages")):
                return _Response(200, _completion(body, None, number))
            if MODEL_REFUSAL in json.dumps(body.get("messages")):
                return _Response(200, _completion(body, None, number, refused=True))
            return _Response(200, _completion(body, text, number))
        if fault.kind == "http_error":
            if fault.body is not None:
                return _Response(fault.status, fault.body.encode(), fault.headers)
            return _error(fault.status, f"stub fault {fault.status}", fault.headers)
        if fault.kind == "malformed_json":
            return _Response(200, b"<html><body>502 Bad Gateway</body></html>")
        if fault.kind == "no_choices":
            return _Response(200, json.dumps({"id": f"chatcmpl-stub-{number}"}).encode())
        if fault.kind == "empty_content":
            return _Response(200, _completion(body, "", number))
        return fault  # reset, close or hang: the connection is dealt with, not answered

    async def _respond_as_anthropic(
        self, request: RecordedRequest, over_capacity: bool
    ) -> _Response | Fault:
        """The Messages API as Anthropic's reference and SDK types describe it: x-api-key and
        anthropic-version, `max_tokens` required, no system role in `messages`, temperature
        0-1; a Message with text blocks and `usage`; errors as {type: error, error: {type,
        message}}, 529 overloaded_error among them."""
        if request.method != "POST" or request.path != ANTHROPIC_PATH:
            return _anthropic_error(404, "not_found_error", f"Not found: {request.path}")
        if over_capacity:
            return _anthropic_error(
                429,
                "rate_limit_error",
                "Number of concurrent connections has exceeded your rate limit.",
                (("retry-after", self.in_flight_retry_after),),
            )
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return _anthropic_error(401, "authentication_error", "invalid x-api-key")
        if request.headers.get("anthropic-version") != ANTHROPIC_VERSION:
            return _anthropic_error(
                400, "invalid_request_error", "anthropic-version: header is required"
            )
        body = request.body
        if not isinstance(body, dict):
            return _anthropic_error(400, "invalid_request_error", "body: not a JSON object")
        problem = _messages_api_problem(body)
        if problem:
            return _anthropic_error(400, "invalid_request_error", problem)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            self._completions += 1
            number = self._completions
        if fault is not None:
            if fault.kind != "http_error":
                return fault
            kind = ANTHROPIC_ERROR_TYPES.get(fault.status, "api_error")
            return _anthropic_error(fault.status, kind, f"stub fault {fault.status}", fault.headers)
        messages = body["messages"]
        if MODEL_REFUSAL in json.dumps(messages) + str(body.get("system", "")):
            return _Response(200, _anthropic_message(body, STUB_REFUSAL_TEXT, number, "refusal"))
        text = echo(messages, int(body["max_tokens"]))
        return _Response(200, _anthropic_message(body, text, number))

    def _noisy_reply(self, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
        temperature = float(body.get("temperature", _default_temperature(body)) or 0.0)
        if temperature > 0:
            key = json.dumps(body, sort_keys=True)
            with self._lock:
                occurrence = self._occurrences.get(key, 0)
                self._occurrences[key] = occurrence + 1
                salt = self._noise_salt
            seed = noise_seed(salt, body, occurrence)
        else:  # greedy decoding: the same answer every time, whatever the salt
            seed = noise_seed("", body, 0)
        return noisy_answer(
            messages,
            temperature=temperature,
            max_tokens=_token_limit(body),
            sampling_noise=self.sampling_noise,
            rng=random.Random(seed),
        )


#: OpenAI's reasoning models, as its API reference lists them: o1, o3, o4 and gpt-5 (and their
#: dated and sized variants).
REASONING_MODELS = re.compile(r"(?:openai/)?(?:o1|o3|o4|gpt-5)(?:-[\w.-]+|\.\d+)?")


def _is_reasoning(body: dict[str, Any]) -> bool:
    return REASONING_MODELS.fullmatch(str(body.get("model", ""))) is not None


def _reasoning_model_refusal(body: dict[str, Any]) -> _Response | None:
    """OpenAI's 400s for what a reasoning model does not take: `max_tokens`, and any
    temperature but its default, 1 (the messages and codes its API returns)."""
    if not _is_reasoning(body):
        return None
    if "max_tokens" in body:
        return _invalid_request(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            param="max_tokens",
            code="unsupported_parameter",
        )
    if "temperature" in body and body["temperature"] != 1:
        return _invalid_request(
            f"Unsupported value: 'temperature' does not support {body['temperature']} with this "
            "model. Only the default (1) value is supported.",
            param="temperature",
            code="unsupported_value",
        )
    return None


def _default_temperature(body: dict[str, Any]) -> float:
    """What a body without `temperature` samples at: 1, the API's default (a reasoning model's
    only value); the stub's older callers that leave it out of other models mean greedy."""
    return 1.0 if _is_reasoning(body) else 0.0


def _token_limit(body: dict[str, Any]) -> int:
    return int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)


def _invalid_request(message: str, *, param: str, code: str) -> _Response:
    payload = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return _Response(400, json.dumps(payload).encode())


def prompt_tokens(body: dict[str, Any]) -> int:
    """The stub's token count of a request: the words of every message (its `usage`)."""
    messages = body.get("messages") or []
    return sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))


def _completion(
    body: dict[str, Any], text: str | None, number: int, *, refused: bool = False
) -> bytes:
    """A chat completion answering `text`; None: the content filter cut the answer
    (finish_reason content_filter, content null, and the filter's results, as Azure sends), or
    with `refused` the model declined (content null, `message.refusal` its words)."""
    words = len((text or (STUB_REFUSAL_TEXT if refused else "")).split())
    prompt = prompt_tokens(body)
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "stop"}
    if refused:
        message["refusal"] = STUB_REFUSAL_TEXT
    elif text is None:
        choice |= {"finish_reason": "content_filter", "content_filter_results": _FILTERED}
    return json.dumps(
        {
            "id": f"chatcmpl-stub-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": words,
                "total_tokens": prompt + words,
            },
        }
    ).encode()


ANTHROPIC_PATH = "/v1/messages"
ANTHROPIC_VERSION = "2023-06-01"
#: HTTP status -> Anthropic's error type (its API reference, "Errors")
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _anthropic_error(
    status: int, kind: str, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> _Response:
    payload = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_stub",
    }
    return _Response(status, json.dumps(payload).encode(), headers)


def _messages_api_problem(body: dict[str, Any]) -> str | None:
    """What the Messages API rejects in a body (its required fields and ranges)."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return (
                f"messages.{index}.role: Input should be 'user' or 'assistant' (system prompts "
                "go in the top-level system parameter)"
            )
    temperature = body.get("temperature", 1.0)
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1"
    if "system" in body and not isinstance(body["system"], (str, list)):
        return "system: Input should be a valid string"
    return None


def _anthropic_message(
    body: dict[str, Any], text: str, number: int, stop_reason: str = "end_turn"
) -> bytes:
    """A Message: text blocks, stop_reason, and usage (input: words of system and messages)."""
    system = body.get("system") if isinstance(body.get("system"), str) else ""
    input_tokens = len(system.split()) + prompt_tokens(body)
    return json.dumps(
        {
            "id": f"msg_stub_{number}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": len(text.split())},
        }
    ).encode()


@dataclass(frozen=True)
class AzureRoute:
    """Azure OpenAI's chat route (its REST spec, 2024-10-21): a deployment and an api-version in
    the URL, or with api_version "v1" the OpenAI-compatible path."""

    deployment: str
    api_version: str

    @property
    def path(self) -> str:
        if self.api_version == "v1":
            return "/openai/v1/chat/completions"
        return (
            f"/openai/deployments/{self.deployment}/chat/completions?api-version={self.api_version}"
        )


#: In a message: the content filter refuses the prompt (Azure: HTTP 400 content_filter), or
#: cuts the answer (HTTP 200, finish_reason content_filter, no content).
CONTENT_FILTER_PROMPT = "[stub-content-filter: prompt]"
CONTENT_FILTER_ANSWER = "[stub-content-filter: answer]"
#: In a message: the model declines (chat completions: content null and `message.refusal`;
#: Anthropic: stop_reason "refusal"), answering STUB_REFUSAL_TEXT.
MODEL_REFUSAL = "[stub-model-refusal]"
STUB_REFUSAL_TEXT = "I'm sorry, I can't help with that."
_FILTERED = {
    "hate": {"filtered": True, "severity": "high"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}


def _azure_error(status: int, code: str, message: str) -> _Response:
    """Azure's errorResponse: {error: {code, message, param, type, inner_error}}."""
    return _Response(status, json.dumps({"error": {"code": code, "message": message}}).encode())


def _content_filter_error() -> _Response:
    """The 400 a deployment's content filter answers a prompt with (errorResponse, its
    inner_error a ResponsibleAIPolicyViolation with the prompt's content_filter_results)."""
    error = {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
        "content management policy. Please modify your prompt and retry.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "inner_error": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_results": _FILTERED,
        },
    }
    return _Response(400, json.dumps({"error": error}).encode())


def _error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> _Response:
    payload = {"error": {"message": message, "type": "stub_error", "code": status}}
    return _Response(status, json.dumps(payload).encode(), headers)


def _encode(response: _Response, keep_alive: bool) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(response.body)}",
    ]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class StubProcess:
    """The stub in a process of its own, so a benchmark's client does not share its GIL.

    It serves until its stdin closes; a line `salt <text>` on stdin reseeds its noise
    (`reseed`), acknowledged with a line `ok` on its stdout.
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        max_in_flight: int | None = None,
        failure_rate: float = 0.0,
        sampling_noise: float = 0.0,
    ) -> None:
        import subprocess
        import sys

        command = [
            sys.executable,
            __file__,
            "--latency",
            str(latency_s),
            "--failure-rate",
            str(failure_rate),
            "--sampling-noise",
            str(sampling_noise),
        ]
        if max_in_flight is not None:
            command += ["--max-in-flight", str(max_in_flight)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self.base_url = self._process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError("the stub process did not start")

    def first_request_at(self) -> float | None:
        """time.monotonic() (system-wide) of the first request since the last call; resets."""
        return self._ask_time("first")

    def last_answer_at(self) -> float | None:
        """time.monotonic() (system-wide) when the stub process sent its last answer."""
        return self._ask_time("last")

    def _ask_time(self, command: str) -> float | None:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(f"{command}\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline().strip()
        return None if answer == "None" else float(answer)

    def reseed(self, salt: str) -> None:
        """`LLMStub.reseed` in the stub process; returns once it applies."""
        if "\n" in salt:
            raise ValueError("a salt is one line")
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(f"salt {salt}\n")
        self._process.stdin.flush()
        if self._process.stdout.readline().strip() != "ok":
            raise RuntimeError("the stub process did not acknowledge the new salt")

    def __enter__(self) -> StubProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()  # the process serves until its stdin closes
        self._process.wait(timeout=30)


def _serve_until_stdin_closes() -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Serve the LLM stub until stdin closes.")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--sampling-noise", type=float, default=0.0)
    args = parser.parse_args()
    stub = LLMStub(
        latency_s=args.latency,
        max_in_flight=args.max_in_flight,
        sampling_noise=args.sampling_noise,
    )
    with stub:
        if args.failure_rate:
            stub.fail_randomly(args.failure_rate, seed=0)
        print(stub.base_url, flush=True)
        for line in sys.stdin:  # until stdin closes
            command, _, argument = line.rstrip("\n").partition(" ")
            if command == "salt":  # a new simulated run: its caller never reads old requests
                stub.reseed(argument)
                stub.forget_requests()
                print("ok", flush=True)
            elif command == "first":  # when the first request arrived, then forget requests
                print(stub.first_request_at, flush=True)
                stub.reset()
            elif command == "last":  # when the last answer went out
                print(stub.last_answer_at, flush=True)


if __name__ == "__main__":
    _serve_until_stdin_closes()
