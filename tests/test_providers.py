"""Providers against a real OpenAI-compatible server on a local socket (tests/llm_stub.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from email.utils import formatdate

import pytest
from fresh_python import python_stdout
from llm_stub import Fault, LLMStub, echo

from promptgate.config import ProviderConfig
from promptgate.errors import BadInput, ExitCode
from promptgate.providers import (
    ChatMessage,
    ChatRequest,
    Completion,
    Provider,
    ProviderError,
    make_provider,
)
from promptgate.providers.github_models import GitHubModelsProvider
from promptgate.providers.offline import OfflineProvider
from promptgate.providers.openai import OpenAIProvider
from promptgate.retry_after import parse_retry_after

KEY_ENV = "PROMPTGATE_TEST_API_KEY"
SECRET = "sk-test-SECRET-4f8a9b"


def chat(text: str) -> ChatRequest:
    return ChatRequest(
        model="stub-model",
        messages=(ChatMessage(role="user", content=text),),
        temperature=0.0,
        max_tokens=16,
    )


def stub_provider(stub: LLMStub, **settings: object) -> OpenAIProvider:
    config = ProviderConfig.model_validate(
        {"base_url": stub.base_url, "api_key_env": KEY_ENV, "timeout_s": 5, **settings}
    )
    return OpenAIProvider(config)


def completion(provider: Provider, request: ChatRequest) -> Completion:
    async def once() -> Completion:
        try:
            return await provider.complete(request)
        finally:
            await provider.aclose()

    return asyncio.run(once())


def complete(provider: Provider, request: ChatRequest) -> str:
    """The answer's text."""
    return completion(provider, request).text


def failure(provider: Provider, request: ChatRequest) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        complete(provider, request)
    return raised.value


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


# -- what goes over the wire ------------------------------------------------------------------


def test_a_completion_is_posted_with_every_parameter_and_the_key_as_bearer_token(
    llm_stub: LLMStub, api_key: str
) -> None:
    request = ChatRequest(
        model="stub-model",
        messages=(
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="Summarise:\n  the   quick brown fox"),
        ),
        temperature=0.3,
        max_tokens=3,
        extra_params=(("top_p", 0.5), ("seed", 7)),
    )

    answer = complete(stub_provider(llm_stub), request)

    assert answer == "Summarise: the quick"
    [seen] = llm_stub.requests
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {api_key}"
    assert seen.body == {
        "model": "stub-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Summarise:\n  the   quick brown fox"},
        ],
        "temperature": 0.3,
        "max_tokens": 3,
        "top_p": 0.5,
        "seed": 7,
    }


def test_a_provider_keeps_its_connection_alive_and_can_reopen_after_closing(
    llm_stub: LLMStub, api_key: str
) -> None:
    provider = stub_provider(llm_stub)

    async def three_calls_then_close() -> list[str]:
        answers = [(await provider.complete(chat(f"call {i}"))).text for i in range(3)]
        await provider.aclose()
        return answers

    first = asyncio.run(three_calls_then_close())
    second = asyncio.run(three_calls_then_close())  # another event loop, as run_requests_sync
    assert first == second == ["call 0", "call 1", "call 2"]
    assert llm_stub.connections_opened == 2  # one keep-alive connection for three calls, twice


def test_calls_go_through_the_proxy_the_environment_names_unless_no_proxy_exempts_the_host(
    llm_stub: LLMStub, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stub stands in for the proxy: a proxied request names the whole URL in its request
    # line, which the stub records as the path (and answers 404: no such route).
    for variable in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTP_PROXY", llm_stub.base_url.rsplit("/v1", 1)[0])
    target = "http://llm.internal.invalid:8080/v1"
    provider = OpenAIProvider(
        ProviderConfig(base_url=target, api_key_env=KEY_ENV, timeout_s=5, max_retries=0)
    )
    failure(provider, chat("via the proxy"))
    assert llm_stub.requests[-1].path == f"{target}/chat/completions"

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert complete(stub_provider(llm_stub), chat("direct")) == "direct"
    assert llm_stub.requests[-1].path == "/v1/chat/completions"


def test_a_missing_key_is_bad_input_that_names_the_variable_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(BadInput) as raised:
        OpenAIProvider(ProviderConfig(api_key_env=KEY_ENV))
    assert f"${KEY_ENV}" in str(raised.value)
    assert raised.value.exit_code == ExitCode.BAD_INPUT


def test_the_openai_kind_reads_openai_api_key_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(BadInput, match=r"\$OPENAI_API_KEY"):
        make_provider(ProviderConfig(kind="openai"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    provider = make_provider(ProviderConfig(kind="openai"))
    assert isinstance(provider, OpenAIProvider)
    assert provider.url == "https://api.openai.com/v1/chat/completions"
    assert SECRET not in repr(provider) and SECRET not in provider.identity


def test_a_local_server_may_be_used_without_a_key(
    llm_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert complete(stub_provider(llm_stub), chat("hello")) == "hello"
    assert "authorization" not in llm_stub.requests[0].headers


def test_a_base_url_that_is_not_http_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with pytest.raises(BadInput, match="base_url"):
        OpenAIProvider(ProviderConfig(base_url="api.example.com/v1", api_key_env=KEY_ENV))


def test_github_models_presets_its_endpoint_and_github_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(BadInput, match=r"\$GITHUB_TOKEN"):
        make_provider(ProviderConfig(kind="github-models"))

    monkeypatch.setenv("GITHUB_TOKEN", "ghs-token")
    provider = make_provider(ProviderConfig(kind="github-models"))
    assert isinstance(provider, GitHubModelsProvider)
    assert provider.url == "https://models.github.ai/inference/chat/completions"
    assert provider.api_key_env == "GITHUB_TOKEN"
    assert provider.identity == "github-models:https://models.github.ai/inference"


def test_github_models_honours_an_explicit_endpoint_and_key_variable(
    llm_stub: LLMStub, api_key: str
) -> None:
    config = ProviderConfig(kind="github-models", base_url=llm_stub.base_url, api_key_env=KEY_ENV)
    assert complete(make_provider(config), chat("hi there")) == "hi there"
    assert llm_stub.requests[0].headers["authorization"] == f"Bearer {api_key}"


def test_the_cache_identity_tells_endpoints_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    one = OpenAIProvider(ProviderConfig(base_url="https://a.example/v1", api_key_env=KEY_ENV))
    other = OpenAIProvider(ProviderConfig(base_url="https://b.example/v1/", api_key_env=KEY_ENV))
    assert one.identity == "openai:https://a.example/v1"
    assert other.identity == "openai:https://b.example/v1"


# -- the offline provider ---------------------------------------------------------------------

ECHO_CASES = [
    ("  spaced \t out\n\nlines  ", 16, "spaced out lines"),
    ("one two three four five", 3, "one two three"),
    ("", 8, ""),
]


@pytest.mark.parametrize(("text", "max_tokens", "expected"), ECHO_CASES)
def test_the_offline_provider_echoes_the_last_user_message_like_the_stub(
    llm_stub: LLMStub, text: str, max_tokens: int, expected: str
) -> None:
    request = ChatRequest(
        model="any",
        messages=(
            ChatMessage(role="system", content="ignored system prompt"),
            ChatMessage(role="user", content="an earlier turn"),
            ChatMessage(role="assistant", content="a reply"),
            ChatMessage(role="user", content=text),
        ),
        temperature=0,
        max_tokens=max_tokens,
    )
    offline = make_provider(ProviderConfig(kind="offline"))
    assert isinstance(offline, OfflineProvider)
    assert offline.identity == "offline:echo"
    assert complete(offline, request) == expected
    messages = [m.model_dump() for m in request.messages]
    assert echo(messages, max_tokens) == expected  # the stub's default reply agrees
    assert llm_stub.request_count == 0  # offline means offline


# -- how failures are reported ----------------------------------------------------------------

RETRYABLE = [
    pytest.param(Fault.http_error(429), "HTTP 429", id="429"),
    pytest.param(Fault.http_error(500), "HTTP 500", id="500"),
    pytest.param(Fault.http_error(502, body="<html>bad gateway</html>"), "bad gateway", id="502"),
    pytest.param(Fault.http_error(503), "HTTP 503", id="503"),
    pytest.param(Fault.http_error(408), "HTTP 408", id="408"),
    pytest.param(Fault.malformed_json(), "not JSON", id="malformed-json"),
    pytest.param(Fault.no_choices(), "without choices", id="no-choices"),
    pytest.param(Fault.empty_content(), "empty completion", id="empty-content"),
    pytest.param(Fault.reset(), "connection", id="connection-reset"),
    pytest.param(Fault.close(), "closed the connection without sending a response", id="closed"),
]


@pytest.mark.parametrize(("fault", "said"), RETRYABLE)
def test_transient_failures_are_retryable_and_say_what_happened(
    llm_stub: LLMStub, fault: Fault, said: str
) -> None:
    llm_stub.script(fault)
    error = failure(stub_provider(llm_stub), chat("hello"))
    assert error.retryable
    assert said in str(error)
    assert llm_stub.base_url in str(error)


def test_a_server_that_does_not_answer_in_time_is_a_retryable_timeout(llm_stub: LLMStub) -> None:
    llm_stub.script(Fault.hang(10))
    started = time.monotonic()
    error = failure(stub_provider(llm_stub, timeout_s=0.2), chat("hello"))
    assert time.monotonic() - started < 2
    assert error.retryable
    assert "within 0.2s" in str(error)


def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAIProvider(ProviderConfig(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=2))
    error = failure(provider, chat("hello"))
    assert error.retryable
    assert "Cannot connect to host" in str(error)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({}, None),
    ],
)
def test_a_429_carries_the_servers_retry_after(
    llm_stub: LLMStub, headers: dict[str, str], expected: float | None
) -> None:
    llm_stub.script(Fault.http_error(429, headers=headers))
    assert failure(stub_provider(llm_stub), chat("hello")).retry_after == expected


def test_a_retry_after_http_date_becomes_seconds_from_now(llm_stub: LLMStub) -> None:
    llm_stub.script(Fault.http_error(429, retry_after=formatdate(time.time() + 30, usegmt=True)))
    retry_after = failure(stub_provider(llm_stub), chat("hello")).retry_after
    assert retry_after is not None and 27 <= retry_after <= 31


def test_retry_after_values_are_parsed_leniently() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("-4", now=now) == 0.0
    assert parse_retry_after(formatdate(now + 12, usegmt=True), now=now) == 12.0
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("", now=now) is None
    assert parse_retry_after(None, now=now) is None


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (400, "rejected the request for model 'stub-model'"),
        (404, "check provider.base_url and that model 'stub-model' exists"),
        (422, "rejected the request"),
    ],
)
def test_a_rejected_request_is_not_retryable_and_quotes_the_server(
    llm_stub: LLMStub, status: int, said: str
) -> None:
    llm_stub.script(Fault.http_error(status))
    error = failure(stub_provider(llm_stub), chat("hello"))
    assert not error.retryable
    assert f"HTTP {status}" in str(error)
    assert said in str(error)
    assert f"the server said: stub fault {status}" in str(error)


def test_a_rejected_key_names_its_variable_and_never_the_key(
    llm_stub: LLMStub, api_key: str
) -> None:
    llm_stub.api_key = "the-right-key"  # the stub's 401 body quotes the key it was sent
    error = failure(stub_provider(llm_stub), chat("hello"))
    assert not error.retryable
    assert "HTTP 401" in str(error)
    assert f"check the key in ${KEY_ENV}" in str(error)
    assert "Incorrect API key provided" in str(error)
    assert api_key not in str(error)
    assert api_key not in repr(error.args)


def test_a_forbidden_request_without_a_key_says_to_set_one(
    llm_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    llm_stub.script(Fault.http_error(403))
    error = failure(stub_provider(llm_stub), chat("hello"))
    assert not error.retryable
    assert f"no key was sent: set ${KEY_ENV}" in str(error)


def test_an_account_out_of_quota_is_not_retried_though_it_is_a_429(
    llm_stub: LLMStub, api_key: str
) -> None:
    quota = (
        '{"error": {"message": "You exceeded your current quota.", "code": "insufficient_quota"}}'
    )
    llm_stub.script(Fault.http_error(429, body=quota))
    error = failure(stub_provider(llm_stub), chat("hello"))
    assert not error.retryable
    assert f"${KEY_ENV} is out of quota" in str(error)
    assert "You exceeded your current quota." in str(error)


def test_a_long_error_body_is_cut_to_a_short_excerpt(llm_stub: LLMStub) -> None:
    llm_stub.script(Fault.http_error(400, body="<html>" + "x" * 5000 + "</html>"))
    message = str(failure(stub_provider(llm_stub), chat("hello")))
    assert "<html>xxx" in message
    assert message.endswith("…")
    assert len(message) < 500


@pytest.mark.parametrize(("kind", "imported"), [("openai", True), ("offline", False)])
def test_the_http_client_is_imported_in_the_background_only_for_a_provider_that_calls_out(
    kind: str, imported: bool
) -> None:

    program = (
        "import sys, threading\n"
        "from promptgate.config import ProviderConfig\n"
        "from promptgate.providers import import_client_in_background\n"
        f"import_client_in_background(ProviderConfig(kind={kind!r}))\n"
        "for thread in threading.enumerate():\n"
        "    if thread.name.startswith('promptgate-import-'):\n"
        "        thread.join(60)\n"
        "print('aiohttp' in sys.modules)\n"
    )
    stdout = python_stdout(program, timeout=60)
    assert stdout.strip() == str(imported)
