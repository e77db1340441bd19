"""A prompt repository wired to the LLM stub and a sqlite MLflow store, for end-to-end tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath

import pytest
from gitrepo import RepoBuilder
from llm_stub import LLMStub

from promptgate.cli import execute
from promptgate.report.model import Report
from promptgate.request import GateRequest

API_KEY_ENV = "PROMPTGATE_TEST_KEY"
API_KEY = "sk-test-very-secret-0123456789"

TEXTS = [
    "the cat sat on the mat near the warm kitchen stove",
    "rain is expected across the northern coast by friday evening",
    "the quarterly report shows revenue up nine percent year on year",
    "please restart the router and wait two minutes before retrying",
    "our office will be closed on monday for the public holiday",
    "the train to berlin leaves from platform four at half past six",
    "update the password on every device that uses the old account",
    "the museum opens a new exhibition about ancient maps in june",
    "two engineers will review the pull request before it is merged",
    "fresh bread is delivered to the shop every morning at seven",
    "the conference call moved to thursday afternoon at three",
    "backups run nightly and are kept for thirty days in storage",
]


def jsonl(texts: list[str] = TEXTS, variable: str = "text") -> str:
    return "".join(
        json.dumps({"id": f"ex-{i}", "vars": {variable: t}, "expected": t}) + "\n"
        for i, t in enumerate(texts)
    )


def config_yaml(
    stub: LLMStub,
    mlflow_db: PurePath,
    *,
    metrics: str = "  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n",
    prompts: str = "  - path: prompts/*.txt\n    dataset: evals/{stem}.jsonl\n",
    max_retries: int = 3,
    extra: str = "",
    provider: str = "",
    model: str = "stub-model",
) -> str:
    """A promptgate.yaml for `stub`; `provider` adds lines to the provider block, `extra`
    top-level blocks."""
    return (
        "version: 1\n"
        "provider:\n"
        "  kind: openai\n"
        f"  base_url: {stub.base_url}\n"
        f"  model: {model}\n"
        f"  api_key_env: {API_KEY_ENV}\n"
        "  concurrency: 4\n"
        "  timeout_s: 5\n"
        f"  max_retries: {max_retries}\n"
        f"{provider}"
        f"prompts:\n{prompts}"
        f"metrics:\n{metrics}"
        "mlflow:\n"
        f"  tracking_uri: sqlite:///{mlflow_db.as_posix()}\n"
        "  experiment: e2e\n"
        f"{extra}"
    )


@dataclass
class GateRun:
    exit_code: int
    report: Report


@dataclass
class PromptRepo:
    builder: RepoBuilder
    workdir: Path

    def gate(
        self,
        *,
        base: str = "main",
        head: str = "pr",
        use_cache: bool = True,
        all_prompts: bool = False,
    ) -> GateRun:
        report_path = self.workdir / "report.json"
        report_path.unlink(missing_ok=True)
        request = GateRequest(
            repo=self.builder.root,
            base=base,
            head=head,
            report_json=report_path,
            report_md=self.workdir / "report.md",
            use_cache=use_cache,
            cache_path=self.workdir / "cache.sqlite3",
            all_prompts=all_prompts,
        )
        code = execute(request)
        return GateRun(code, Report.model_validate_json(report_path.read_text()))


@contextmanager
def noisy_stub(monkeypatch: pytest.MonkeyPatch, salt: str) -> Iterator[LLMStub]:
    """The LLM stub in noise mode (sampling noise 0.3 per word at temperature 1), its noise
    drawn from `salt`, with the API key in the environment."""
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    with LLMStub(api_key=API_KEY, sampling_noise=0.3, noise_salt=salt) as server:
        yield server
