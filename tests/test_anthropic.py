"""kind: anthropic against a stub of the Messages API as Anthropic's reference and SDK types
describe it: x-api-key and anthropic-version, system at the top level, max_tokens required,
text blocks, usage as input/output tokens, errors as {type: error, error: {type, message}}."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from action_run import BAD, GOOD
from gate_fixtures import TEXTS, PromptRepo, jsonl
from gitrepo import RepoBuilder
from llm_stub import MODEL_REFUSAL, STUB_REFUSAL_TEXT, Fault, LLMStub
from test_providers import completion

from promptgate.config import ProviderConfig
from promptgate.errors import BadInput
from promptgate.providers import ChatMessage, ChatRequest, make_provider
from promptgate.report import escape
from promptgate.report.markdown import render_markdown

KEY = "sk-ant-stub-4e1f0c"
KEY_ENV = "ANTHROPIC_API_KEY"


@pytest.fixture
def anthropic(monkeypatch: pytest.MonkeyPatch) -> LLMStub:
    monkeypatch.setenv(KEY_ENV, KEY)
    with LLMStub(api_key=KEY, anthropic=True) as server:
        yield server


def provider(stub: LLMStub) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {
            "kind": "anthropic",
            "base_url": stub.base_url,
            "model": "claude-haiku-4-5",
            "timeout_s": 5,
        }
    )


def request(*messages: tuple[str, str], **settings: object) -> ChatRequest:
    return ChatRequest(
        model="claude-haiku-4-5",
        messages=tuple(ChatMessage(role=role, content=text) for role, text in messages),  # type: ignore[arg-type]
        temperature=settings.pop("temperature", 0.0),  # type: ignore[arg-type]
        max_tokens=16,
        **settings,  # type: ignore[arg-type]
    )


def test_system_goes_on_top_and_the_answer_is_the_text_blocks(anthropic: LLMStub) -> None:
    answer = completion(
        make_provider(provider(anthropic)),
        request(("system", "Be brief and exact."), ("user", "hello there friend")),
    )
    (sent,) = anthropic.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.body["system"] == "Be brief and exact." and sent.body["max_tokens"] == 16
    assert sent.body["messages"] == [{"role": "user", "content": "hello there friend"}]
    assert answer.text == "hello there friend"
    # input tokens: the stub counts the words of the system prompt and of every message
    assert (answer.prompt_tokens, answer.completion_tokens) == (4 + 3, 3)


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit_error"), (529, "overloaded_error")])
def test_a_rate_limit_or_an_overload_is_retried_after_the_wait_asked(
    anthropic: LLMStub, status: int, kind: str
) -> None:
    from promptgate.runner import run_requests_sync

    anthropic.script(Fault.http_error(status, retry_after="0"))
    outcome = run_requests_sync(
        [request(("user", "hi"))],
        make_provider(provider(anthropic)),
        None,
        concurrency=1,
        max_retries=2,
    )
    assert outcome.outputs == ["hi"] and outcome.stats.retried == 1


def test_a_wrong_key_is_fatal_and_the_error_is_anthropics(
    anthropic: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptgate.providers import ProviderError

    monkeypatch.setenv(KEY_ENV, "sk-ant-wrong")
    with pytest.raises(ProviderError) as raised:
        completion(make_provider(provider(anthropic)), request(("user", "hi")))
    assert raised.value.fatal and "invalid x-api-key" in str(raised.value)
    assert "$ANTHROPIC_API_KEY" in str(raised.value)


def test_what_the_messages_api_does_not_take_is_bad_input(anthropic: LLMStub) -> None:
    chosen = make_provider(provider(anthropic))
    with pytest.raises(BadInput, match="above the Messages API's range"):
        completion(chosen, request(("user", "hi"), temperature=1.5))
    with pytest.raises(BadInput, match="'frequency_penalty' is not one the Messages API takes"):
        completion(chosen, request(("user", "hi"), extra_params=(("frequency_penalty", 0.5),)))
    assert anthropic.requests == []


def test_a_prompt_files_stop_goes_as_stop_sequences(anthropic: LLMStub) -> None:
    completion(
        make_provider(provider(anthropic)),
        request(("user", "hi"), extra_params=(("stop", "END"), ("top_k", 5))),
    )
    (sent,) = anthropic.requests
    assert sent.body["stop_sequences"] == ["END"] and sent.body["top_k"] == 5
    assert "stop" not in sent.body


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"seed": 7}, "takes no seed"), ({"token_limit_param": "max_tokens"}, "always takes")],
)
def test_openai_only_settings_on_anthropic_are_a_config_error(
    setting: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ProviderConfig.model_validate({"kind": "anthropic", **setting})


def test_a_refusal_stop_reason_is_the_models_answer_not_a_retry(anthropic: LLMStub) -> None:
    answer = completion(
        make_provider(provider(anthropic)),
        request(("system", f"Answer nothing. {MODEL_REFUSAL}"), ("user", "hello")),
    )
    assert (answer.text, answer.refusal) == (STUB_REFUSAL_TEXT, "refusal: model")
    assert len(anthropic.requests) == 1


def anthropic_repo(tmp_path: Path, anthropic: LLMStub) -> PromptRepo:
    builder = RepoBuilder(tmp_path / "repo")
    config = (
        "version: 1\nprovider:\n  kind: anthropic\n"
        f"  base_url: {anthropic.base_url}\n  model: claude-haiku-4-5\n"
        "  concurrency: 4\n  timeout_s: 5\n"
        "  price: { input_per_mtok: 1, output_per_mtok: 5 }\n"
        "prompts:\n  - path: prompts/*.txt\n    dataset: evals/{stem}.jsonl\n"
        "metrics:\n  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n"
        f"mlflow:\n  tracking_uri: sqlite:///{(tmp_path / 'mlflow.db').as_posix()}\n"
    )
    builder.commit({"promptgate.yaml": config, "prompts/a.txt": GOOD, "evals/a.jsonl": jsonl()})
    builder.branch("pr")
    return PromptRepo(builder, tmp_path)


def test_a_gate_on_anthropic_fails_a_regression_and_passes_a_harmless_change(
    tmp_path: Path, anthropic: LLMStub
) -> None:
    repo = anthropic_repo(tmp_path, anthropic)
    builder = repo.builder
    builder.commit({"prompts/a.txt": BAD})
    failed = repo.gate(use_cache=False)
    assert failed.exit_code == 1 and failed.report.prompts[0].verdict == "fail"
    usage = failed.report.prompts[0].usage["baseline"]
    words = sum(len(text.split()) for text in TEXTS)
    assert (usage.prompt_tokens, usage.completion_tokens) == (words, words)
    assert usage.cost_usd == pytest.approx((words * 1 + words * 5) / 1_000_000)
    builder.commit({"prompts/a.txt": GOOD + "\n"})
    passed = repo.gate(use_cache=False)
    assert passed.exit_code == 0 and passed.report.prompts[0].verdict == "pass"


def test_a_prompt_the_model_refuses_fails_and_each_example_says_so(
    tmp_path: Path, anthropic: LLMStub
) -> None:
    repo = anthropic_repo(tmp_path, anthropic)
    repo.builder.commit({"prompts/a.txt": f"{MODEL_REFUSAL}\n{GOOD}"})
    run = repo.gate(use_cache=False)
    (prompt,) = run.report.prompts
    assert run.exit_code == 1 and prompt.verdict == "fail" and run.report.calls.retried == 0
    assert prompt.usage["candidate"].refused == len(TEXTS) and prompt.usage["baseline"].refused == 0
    worst = prompt.top_regressions[0]
    assert worst.candidate_output == STUB_REFUSAL_TEXT
    assert prompt.refused_examples[worst.id] == {"candidate": "refusal: model"}
    comment = render_markdown(run.report)
    reason = escape.inline("refusal: model")
    assert f"· candidate refused ({reason})\n\n```diff\n" in comment
    assert f"\n+ {STUB_REFUSAL_TEXT}\n```" in comment
    # MLflow's examples table of the candidate's run has the refusal column too.
    from mlflow.tracking import MlflowClient
    from test_tracking import artifact_text, child_runs

    info = run.report.mlflow
    assert info.tracking_uri and info.experiment_id and info.run_id
    client = MlflowClient(tracking_uri=info.tracking_uri)
    (candidate,) = [
        child
        for child in child_runs(client, info.experiment_id, info.run_id)
        if child.data.tags["promptgate.version"] == "candidate"
    ]
    table = json.loads(artifact_text(client, candidate.info.run_id, "examples.json", tmp_path))
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert {row["candidate_refusal"] for row in rows} == {"refusal: model"}
    assert {row["baseline_refusal"] for row in rows} == {None}
