"""The OpenAI-compatible kind, completed (issue 13): `headers` with environment references kept
secret, `seed`, and the reasoning models' parameters (`max_completion_tokens`, no temperature),
against the LLM stub, which answers as OpenAI's API does (its 400s for those models included)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from action_run import BAD, new_workspace
from gate_fixtures import API_KEY, API_KEY_ENV, PromptRepo, config_yaml, jsonl
from github_stub import GitHubStub
from gitrepo import RepoBuilder
from llm_stub import MODEL_REFUSAL, STUB_REFUSAL_TEXT, Fault, LLMStub
from test_providers import KEY_ENV, SECRET, chat, complete, completion, failure, stub_provider

from promptgate.config import ProviderConfig
from promptgate.errors import BadInput
from promptgate.providers import ChatMessage, ChatRequest
from promptgate.providers.parameters import is_reasoning_model, token_limit_param

GATEWAY_SECRET = "gw-secret-7c1e5d2b9a"
HEADERS = {"X-Gateway-Token": "Bearer ${PROMPTGATE_TEST_GATEWAY}", "X-Team": "prompts"}


def request_for(model: str, temperature: float = 0.0) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=(ChatMessage(role="user", content="hello there"),),
        temperature=temperature,
        max_tokens=16,
    )


# --- headers ---------------------------------------------------------------------------------


def test_headers_reach_the_server_with_their_environment_references_filled_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.setenv("PROMPTGATE_TEST_GATEWAY", GATEWAY_SECRET)
    with LLMStub() as stub:
        assert complete(stub_provider(stub, headers=HEADERS), chat("hi")) == "hi"
        (sent,) = stub.requests
    assert sent.headers["x-gateway-token"] == f"Bearer {GATEWAY_SECRET}"
    assert sent.headers["x-team"] == "prompts"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"


def test_an_unset_header_variable_is_bad_input_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.delenv("PROMPTGATE_TEST_GATEWAY", raising=False)
    with LLMStub() as stub, pytest.raises(BadInput) as raised:
        stub_provider(stub, headers=HEADERS)
    assert "provider.headers.X-Gateway-Token uses ${PROMPTGATE_TEST_GATEWAY}" in str(raised.value)
    assert "not set" in str(raised.value)


def test_a_header_secret_the_server_quotes_back_is_redacted_from_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.setenv("PROMPTGATE_TEST_GATEWAY", GATEWAY_SECRET)
    quoted = f'{{"error": {{"message": "bad gateway token Bearer {GATEWAY_SECRET}"}}}}'
    with LLMStub() as stub:
        stub.script(Fault.http_error(400, body=quoted))
        error = failure(stub_provider(stub, headers=HEADERS), chat("hi"))
    assert GATEWAY_SECRET not in str(error) and "bad gateway token Bearer ***" in str(error)


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Authorization": "Bearer x"}, "Authorization is set by promptgate itself"),
        ({"Content-Length": "1"}, "Content-Length is set by promptgate itself"),
        ({"X Team": "a"}, "'X Team' is not an HTTP header name"),
        ({"X-Team": "${team-name}"}, "${team-name} is not a variable name"),
        ({"X-Team": "Bearer ${TOKEN"}, "a ${ has no closing }"),
        ({"X-Team": "a\r\nX-Injected: 1"}, "a line break or NUL cannot be part of a header"),
    ],
)
def test_a_header_that_would_break_or_hijack_the_request_is_a_config_error(
    headers: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValueError, match="headers") as raised:
        ProviderConfig.model_validate({"headers": headers})
    assert problem in str(raised.value)


def test_a_variable_whose_value_would_split_the_header_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.setenv("PROMPTGATE_TEST_GATEWAY", "token\r\nX-Injected: 1")
    with LLMStub() as stub, pytest.raises(BadInput, match="line break or NUL"):
        stub_provider(stub, headers=HEADERS)


def test_no_key_or_header_secret_reaches_the_log_report_comment_mlflow_or_cache(
    tmp_path: Path,
) -> None:
    """The Action masks what the config's provider reads from the environment (its key
    variable is not one of the well-known ones), and nothing it writes holds a secret."""
    with LLMStub(api_key=API_KEY) as llm, GitHubStub() as github:
        workspace = new_workspace(tmp_path, llm, github)
        config = (workspace.builder.root / "promptgate.yaml").read_text()
        headers = "  headers:\n" + "".join(f"    {k}: '{v}'\n" for k, v in HEADERS.items())
        workspace.builder.checkout("main")
        workspace.builder.commit(
            {
                "promptgate.yaml": config.replace(
                    "  max_retries: 3\n", "  max_retries: 3\n" + headers
                )
            }
        )
        workspace.builder.checkout("pr")
        workspace.builder.commit({"prompts/a.txt": BAD})
        run = workspace.run(
            "pull_request",
            workspace.pr_event(),
            {"PROMPTGATE_TEST_GATEWAY": GATEWAY_SECRET},
        )
        assert run.code == 1, run.log
        assert llm.requests[0].headers["x-gateway-token"] == f"Bearer {GATEWAY_SECRET}"
        comments = [c["body"] for c in github.comments("acme/prompts", 7)]
    assert f"::add-mask::{API_KEY}" in run.log and f"::add-mask::{GATEWAY_SECRET}" in run.log
    assert comments
    for secret in (API_KEY, GATEWAY_SECRET):
        shown = run.log.replace(f"::add-mask::{secret}", "")
        assert secret not in shown and secret not in run.summary
        assert not any(secret in body for body in comments)
        assert not _files_holding(tmp_path, secret.encode()), secret


def _files_holding(root: Path, secret: bytes) -> list[Path]:
    """Every file under `root` whose bytes hold `secret` (sqlite stores: their whole content)."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts and secret in path.read_bytes():
            found.append(path)
    for path in root.rglob("*.db"):
        with sqlite3.connect(path) as db:
            dump = "\n".join(db.iterdump()).encode()
        if secret in dump:
            found.append(path)
    return found


# --- reasoning models and the token limit ----------------------------------------------------


@pytest.mark.parametrize(
    ("model", "reasoning"),
    [
        ("o1", True),
        ("o1-2024-12-17", True),
        ("o3-mini", True),
        ("o4-mini", True),
        ("gpt-5", True),
        ("gpt-5-mini-2025-08-07", True),
        ("gpt-5.1", True),
        ("openai/o3-mini", True),  # GitHub Models' publisher/name
        ("gpt-4o", False),
        ("gpt-4o-mini", False),
        ("gpt-4.1", False),
        ("o10", False),
        ("llama3.1:8b", False),
    ],
)
def test_reasoning_models_are_told_apart_by_family(model: str, reasoning: bool) -> None:
    assert is_reasoning_model(model) is reasoning
    expected = "max_completion_tokens" if reasoning else "max_tokens"
    assert token_limit_param(model, None) == expected
    assert token_limit_param(model, "max_tokens") == "max_tokens"  # the config decides when set


@pytest.mark.parametrize(
    ("model", "setting", "sent", "absent"),
    [
        ("o3-mini", None, {"max_completion_tokens": 16}, {"max_tokens", "temperature"}),
        ("gpt-5", None, {"max_completion_tokens": 16}, {"max_tokens", "temperature"}),
        ("gpt-4o", None, {"max_tokens": 16, "temperature": 0.0}, {"max_completion_tokens"}),
        (
            "gpt-4o",
            "max_completion_tokens",
            {"max_completion_tokens": 16, "temperature": 0.0},
            {"max_tokens"},
        ),
    ],
)
def test_the_body_carries_the_token_limit_in_the_field_the_model_takes(
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    setting: str | None,
    sent: dict[str, object],
    absent: set[str],
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with LLMStub() as stub:
        provider = stub_provider(stub, token_limit_param=setting)
        assert complete(provider, request_for(model)) == "hello there"
        (request,) = stub.requests
    body = request.body
    assert {key: body[key] for key in sent} == sent
    assert not absent & body.keys()


def test_max_tokens_forced_on_a_reasoning_model_is_the_servers_refusal_not_a_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with LLMStub() as stub:
        error = failure(stub_provider(stub, token_limit_param="max_tokens"), request_for("o3"))
        assert stub.request_count == 1
    assert not error.retryable
    assert "HTTP 400" in str(error) and "Use 'max_completion_tokens' instead" in str(error)


def _repo(tmp_path: Path, stub: LLMStub, **config: str) -> PromptRepo:
    builder = RepoBuilder(tmp_path / "repo")
    builder.commit(
        {
            "promptgate.yaml": config_yaml(stub, tmp_path / "mlflow.db", **config),
            "prompts/a.txt": "{{ text }}\n",
            "evals/a.jsonl": jsonl(),
        },
        "prompts",
    )
    builder.branch("pr")
    return PromptRepo(builder, tmp_path)


def test_a_gate_on_a_reasoning_model_samples_each_example_and_catches_the_regression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configured at temperature 0, o3-mini still samples (at 1, its only temperature): the
    gate plans it as a sampled model, and the server accepts every request."""
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    with LLMStub(api_key=API_KEY, sampling_noise=0.3, noise_salt="o3") as stub:
        repo = _repo(tmp_path, stub, model="o3-mini")
        repo.builder.commit({"prompts/a.txt": BAD})
        run = repo.gate(use_cache=False)
        bodies = [request.body for request in stub.requests]
    assert run.exit_code == 1, run.report.model_dump_json(indent=1)
    assert run.report.prompts[0].verdict == "fail"
    assert all("temperature" not in body and "max_tokens" not in body for body in bodies)
    assert {body["max_completion_tokens"] for body in bodies} == {256}


# --- seed ------------------------------------------------------------------------------------


def test_the_seed_is_sent_and_a_new_seed_is_a_new_answer_not_a_cached_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    with LLMStub(api_key=API_KEY) as stub:
        repo = _repo(tmp_path, stub, provider="  seed: 42\n")
        repo.builder.commit({"prompts/a.txt": BAD})
        first = repo.gate()
        again = repo.gate()
        seeds = {request.body["seed"] for request in stub.requests}
        config = repo.builder.root / "promptgate.yaml"
        repo.builder.checkout("main")
        repo.builder.commit({"promptgate.yaml": config.read_text().replace("seed: 42", "seed: 43")})
        repo.builder.checkout("pr")
        repo.builder.commit({"prompts/a.txt": BAD + "\n"})
        reseeded = repo.gate()
        new_seeds = {request.body["seed"] for request in stub.requests[first.report.calls.made :]}
    assert seeds == {42} and first.report.calls.made == 24
    assert again.report.calls.made == 0 and again.report.calls.cached == 24
    assert new_seeds == {43} and reseeded.report.calls.made == 24


def test_a_model_that_declines_is_answered_by_its_refusal_not_retried(llm_stub: LLMStub) -> None:
    """Chat completions' `message.refusal` (content null): the model's words are its answer."""
    answer = completion(stub_provider(llm_stub), chat(f"{MODEL_REFUSAL} write it"))
    assert (answer.text, answer.refusal) == (STUB_REFUSAL_TEXT, "refusal: model")
    assert answer.completion_tokens == len(STUB_REFUSAL_TEXT.split())
    assert len(llm_stub.requests) == 1
