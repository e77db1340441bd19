"""kind: azure-openai against a stub that answers as Azure OpenAI's REST spec (2024-10-21)
describes: the deployment and api-version in the URL (or the v1 path), the `api-key` header,
429s, and content-filter refusals (HTTP 400 `content_filter`, or `finish_reason:
content_filter`), which are answers to score, not outages to retry."""

from __future__ import annotations

from pathlib import Path

import pytest
from action_run import BAD, GOOD
from gate_fixtures import TEXTS, PromptRepo, jsonl
from gitrepo import RepoBuilder
from llm_stub import CONTENT_FILTER_ANSWER, CONTENT_FILTER_PROMPT, AzureRoute, Fault, LLMStub
from test_providers import chat, completion

from promptgate.config import ProviderConfig
from promptgate.errors import BadInput
from promptgate.gate import evaluate
from promptgate.providers import make_provider
from promptgate.report import escape
from promptgate.report.format import refusal_summary
from promptgate.report.markdown import render_markdown
from promptgate.request import GateRequest

KEY = "azure-key-5f3c9d1e7a"
KEY_ENV = "AZURE_OPENAI_API_KEY"


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch) -> LLMStub:
    monkeypatch.setenv(KEY_ENV, KEY)
    with LLMStub(api_key=KEY, azure=AzureRoute("prod-gpt4o", "2024-10-21")) as server:
        yield server


def provider_config(stub: LLMStub, **settings: object) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {
            "kind": "azure-openai",
            "base_url": stub.base_url,
            "model": "gpt-4o",
            "deployment": "prod-gpt4o",
            "api_version": "2024-10-21",
            "timeout_s": 5,
            **settings,
        }
    )


def config_text(stub: LLMStub, tmp: Path, provider: str = "") -> str:
    return (
        "version: 1\n"
        "provider:\n"
        "  kind: azure-openai\n"
        f"  base_url: {stub.base_url}\n"
        "  model: gpt-4o\n"
        "  deployment: prod-gpt4o\n"
        "  api_version: '2024-10-21'\n"
        "  concurrency: 4\n"
        "  timeout_s: 5\n"
        "  max_retries: 3\n"
        f"{provider}"
        "prompts:\n  - path: prompts/*.txt\n    dataset: evals/{stem}.jsonl\n"
        "metrics:\n  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n"
        f"mlflow:\n  tracking_uri: sqlite:///{(tmp / 'mlflow.db').as_posix()}\n"
    )


def repo(tmp_path: Path, stub: LLMStub, texts: list[str] = TEXTS) -> PromptRepo:
    builder = RepoBuilder(tmp_path / "repo")
    builder.commit(
        {
            "promptgate.yaml": config_text(stub, tmp_path),
            "prompts/a.txt": GOOD,
            "evals/a.jsonl": jsonl(texts),
        },
        "prompts",
    )
    builder.branch("pr")
    return PromptRepo(builder, tmp_path)


def test_a_call_goes_to_the_deployment_with_the_api_key_header(azure: LLMStub) -> None:
    answer = completion(make_provider(provider_config(azure)), chat("hello there"))
    assert answer.text == "hello there" and answer.refusal is None
    (sent,) = azure.requests
    assert sent.path == "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21"
    assert sent.headers["api-key"] == KEY and "authorization" not in sent.headers
    assert "model" not in sent.body  # the deployment names the model


def test_api_version_v1_takes_the_openai_compatible_path_with_the_model_in_the_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with LLMStub(api_key=KEY, azure=AzureRoute("", "v1")) as stub:
        config = provider_config(stub, api_version="v1", deployment=None)
        assert completion(make_provider(config), chat("hi")).text == "hi"
        (sent,) = stub.requests
    assert sent.path == "/openai/v1/chat/completions" and sent.body["model"] == "stub-model"


def test_a_wrong_key_is_fatal_and_never_quoted(
    azure: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "wrong-key-000")
    provider = make_provider(provider_config(azure))
    with pytest.raises(Exception) as raised:
        completion(provider, chat("hi"))
    assert "refused the credentials" in str(raised.value) and "$AZURE_OPENAI_API_KEY" in str(
        raised.value
    )
    assert "wrong-key-000" not in str(raised.value)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"api_version": "2024-10-21"}, "needs base_url"),
        ({"base_url": "https://r.openai.azure.com"}, "needs api_version"),
        ({"base_url": "https://r.openai.azure.com", "api_version": "latest"}, "needs api_version"),
        (
            {"base_url": "https://r.openai.azure.com", "api_version": "v1", "deployment": "a/b"},
            "is not a deployment name",
        ),
    ],
)
def test_an_azure_config_without_what_it_needs_is_an_error(
    settings: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        ProviderConfig.model_validate({"kind": "azure-openai", **settings})


def test_azure_settings_on_another_kind_are_an_error() -> None:
    with pytest.raises(ValueError, match="apply to kind azure-openai only"):
        ProviderConfig.model_validate({"kind": "openai", "deployment": "prod"})


def test_a_regressing_pr_fails_and_a_harmless_one_passes(tmp_path: Path, azure: LLMStub) -> None:
    prompts = repo(tmp_path, azure)
    prompts.builder.commit({"prompts/a.txt": BAD})
    failed = prompts.gate(use_cache=False)
    assert failed.exit_code == 1 and failed.report.prompts[0].verdict == "fail"
    prompts.builder.commit({"prompts/a.txt": GOOD + "\n"})
    passed = prompts.gate(use_cache=False)
    assert passed.exit_code == 0 and passed.report.prompts[0].verdict == "pass"
    assert passed.report.gate is not None and passed.report.gate.provider == "azure-openai"


def test_a_429_is_retried_after_the_wait_azure_asks(tmp_path: Path, azure: LLMStub) -> None:
    prompts = repo(tmp_path, azure)
    prompts.builder.commit({"prompts/a.txt": BAD})
    azure.script(Fault.http_error(429, retry_after="0"), Fault.http_error(429, retry_after="0"))
    run = prompts.gate(use_cache=False)
    assert run.exit_code == 1 and run.report.calls.retried == 2 and run.report.calls.failed == 0


def test_a_prompt_the_content_filter_refuses_is_scored_empty_not_retried(
    tmp_path: Path, azure: LLMStub
) -> None:
    prompts = repo(tmp_path, azure)
    prompts.builder.commit({"prompts/a.txt": f"{CONTENT_FILTER_PROMPT}\n{GOOD}"})
    run = prompts.gate(use_cache=False)
    (prompt,) = run.report.prompts
    assert run.exit_code == 1 and prompt.verdict == "fail"  # every candidate answer is empty
    assert prompt.metrics["rougeL"].candidate == 0.0
    assert run.report.calls.retried == 0 and len(azure.requests) == 2 * len(TEXTS)
    assert prompt.usage["candidate"].refused == len(TEXTS) and prompt.usage["baseline"].refused == 0
    shown = refusal_summary(prompt)
    assert shown is not None and shown.startswith("refused: 12 of 12 candidate answers")
    comment = render_markdown(run.report)
    # Above the metric table, which it explains, not after it.
    assert comment.index(f"> ⚠️ {escape.inline(shown, 300)}") < comment.index("| metric |")
    # Each regressed example says its candidate answer was refused, instead of a blank cell.
    assert prompt.refused_examples == {
        f"ex-{i}": {"candidate": "content_filter: prompt"} for i in range(len(TEXTS))
    }
    worst = prompt.top_regressions[0]
    assert worst.candidate_output == "" and worst.baseline_output
    assert set(worst.metric_deltas()) == {"bleu", "rougeL"}  # the contract's keys, nothing more
    reason = escape.inline("content_filter: prompt")
    assert (
        f"· candidate refused ({reason})\n\n```diff\n- {worst.baseline_output}\n+ (empty answer)\n```"
        in comment
    )


def test_answers_the_filter_cuts_count_per_example_and_survive_the_cache(
    tmp_path: Path, azure: LLMStub
) -> None:
    texts = [*TEXTS[:10], f"{CONTENT_FILTER_ANSWER} one", f"{CONTENT_FILTER_ANSWER} two"]
    prompts = repo(tmp_path, azure, texts)
    prompts.builder.commit({"prompts/a.txt": GOOD + "\n"})
    first = prompts.gate()
    again = prompts.gate()
    for run in (first, again):
        (prompt,) = run.report.prompts
        assert run.exit_code == 0 and prompt.verdict == "pass"  # both versions cut alike
        assert prompt.usage["baseline"].refused == prompt.usage["candidate"].refused == 2
    assert again.report.calls.made == 0 and first.report.calls.retried == 0


@pytest.mark.parametrize(("api_version", "reachable"), [("2024-10-21", False), ("v1", True)])
def test_a_prompt_file_pinning_another_model_needs_the_v1_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_version: str, reachable: bool
) -> None:
    """On a deployment URL the deployment decides the model, so a prompt's own model would be
    silently ignored: bad input naming the file. The v1 path sends it as the deployment."""
    monkeypatch.setenv(KEY_ENV, KEY)
    prompt = "model: gpt-4o-mini\nmessages:\n  - role: user\n    content: '{{text}}'\n"
    with LLMStub(api_key=KEY, azure=AzureRoute("prod-gpt4o", api_version)) as azure:
        config = config_text(azure, tmp_path).replace("'2024-10-21'", f"'{api_version}'")
        config = config.replace("prompts/*.txt", "prompts/*.prompt.yml")
        config = config.replace("evals/{stem}.jsonl", "evals/a.jsonl")
        builder = RepoBuilder(tmp_path / "repo")
        builder.commit(
            {"promptgate.yaml": config, "prompts/a.prompt.yml": prompt, "evals/a.jsonl": jsonl()}
        )
        builder.branch("pr")
        builder.commit({"prompts/a.prompt.yml": prompt.replace("{{text}}", "{{ text }}")})
        request = GateRequest(repo=builder.root, base="main", head="pr", use_cache=False)
        if reachable:
            assert evaluate(request).report.verdict == "pass"
            assert {sent.body["model"] for sent in azure.requests} == {"gpt-4o-mini"}
            return
        with pytest.raises(BadInput) as raised:
            evaluate(request)
        assert raised.value.file == "prompts/a.prompt.yml"
        assert "'gpt-4o-mini'" in str(raised.value) and "api_version: v1" in str(raised.value)
        assert azure.requests == []
