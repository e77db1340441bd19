"""A changed eval set is never silent: the PR that rewrites one is reported, counted, logged and,
with `gate.on_dataset_change: fail`, failed. Real git repositories, the LLM stub over HTTP (the
offline provider for the Action), a sqlite MLflow store."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from events import push
from gate_fixtures import API_KEY, API_KEY_ENV, TEXTS, config_yaml, jsonl
from gitrepo import RepoBuilder
from llm_stub import LLMStub
from rich.console import Console
from typer.testing import CliRunner

from promptgate.cli import app, execute
from promptgate.report.model import Report
from promptgate.request import GateRequest

SHARED = "evals/shared.jsonl"
# Two prompts use the shared eval set; a third has its own, which the PR leaves alone.
PROMPTS = (
    f"  - path: prompts/short.txt\n    dataset: {SHARED}\n"
    f"  - path: prompts/plain.txt\n    dataset: {SHARED}\n"
    "  - path: prompts/*.txt\n    dataset: evals/{stem}.jsonl\n"
)
FILES = {
    "prompts/short.txt": "{{ text }}\n",
    "prompts/plain.txt": "Text: {{ text }}\n",
    "prompts/other.txt": "{{ text }}\n",
    SHARED: jsonl(),
    "evals/other.jsonl": jsonl(),
}
FAIL_ON_CHANGE = "gate:\n  on_dataset_change: fail\n"


def rewritten(examples: str = jsonl()) -> str:
    """The eval set with ex-0 removed, ex-new added, ex-1's reference and ex-2's vars changed."""
    rows = [json.loads(line) for line in examples.splitlines()]
    rows = [row for row in rows if row["id"] != "ex-0"]
    rows[0]["expected"] = "a reference the PR finds easier to meet"
    rows[1]["vars"]["text"] = "a different input for the same id"
    rows.append({"id": "ex-new", "vars": {"text": "one more"}, "expected": "one more"})
    return "".join(json.dumps(row) + "\n" for row in rows)


COUNTS = {"added": 1, "removed": 1, "reference_changed": 1, "vars_changed": 1}
COUNTS_TEXT = "1 added, 1 removed, 1 with a changed reference, 1 with changed vars"


@dataclass
class Run:
    exit_code: int
    report: Report
    comment: str
    terminal: str


@dataclass
class Repo:
    builder: RepoBuilder
    workdir: Path

    def gate(self) -> Run:
        report_json, report_md = self.workdir / "report.json", self.workdir / "report.md"
        terminal = io.StringIO()
        request = GateRequest(
            repo=self.builder.root,
            base="main",
            head="pr",
            report_json=report_json,
            report_md=report_md,
            cache_path=self.workdir / "cache.sqlite3",
        )
        code = execute(request, Console(file=terminal, width=200, color_system=None))
        report = Report.model_validate_json(report_json.read_text())
        return Run(code, report, report_md.read_text(), terminal.getvalue())


@pytest.fixture
def new_repo(tmp_path: Path, llm_stub: LLMStub, monkeypatch: pytest.MonkeyPatch):
    """`main` holds the files and a config (PROMPTS unless given); the PR is branch `pr`."""
    monkeypatch.setenv(API_KEY_ENV, API_KEY)

    def build(files: dict[str, str] = FILES, prompts: str = PROMPTS, extra: str = "") -> Repo:
        builder = RepoBuilder(tmp_path / "repo")
        config = config_yaml(llm_stub, tmp_path / "mlflow.db", prompts=prompts, extra=extra)
        builder.commit({"promptgate.yaml": config, **files}, "prompts")
        builder.branch("pr")
        return Repo(builder, tmp_path)

    return build


def test_a_pr_that_changes_only_an_eval_set_reports_every_prompt_that_uses_it(new_repo) -> None:
    repo = new_repo()
    repo.builder.commit({SHARED: rewritten()}, "Easier references")
    run = repo.gate()

    assert run.exit_code == 0 and run.report.verdict == "pass"  # warn: reported, not failed
    assert [p.path for p in run.report.prompts] == ["prompts/plain.txt", "prompts/short.txt"]
    for prompt in run.report.prompts:
        assert prompt.change == "unchanged" and prompt.dataset_changed
        assert prompt.dataset == SHARED and prompt.verdict == "pass"
        assert prompt.dataset_diff is not None and prompt.dataset_diff.model_dump() == COUNTS
        assert prompt.examples == len(TEXTS)  # the head's eval set, on both sides
        assert all(m.delta == 0.0 for m in prompt.metrics.values())  # same text: only noise
    assert "No prompt file changed" not in run.comment
    assert (
        f"**The eval set ({SHARED}) changed in this PR**: {COUNTS_TEXT} "
        "(examples matched by id). The prompt itself is unchanged" in run.comment
    )
    assert f"the eval set changed in this PR: {COUNTS_TEXT}" in run.terminal


def test_a_rewritten_test_data_with_a_new_model_is_a_changed_eval_set(new_repo) -> None:
    header = "model: stub-model\nmessages:\n  - role: user\n    content: '{{text}}'\ntestData:\n"
    test_data = "".join(f"  - text: {t}\n    expected: {t}\n" for t in TEXTS[:4])
    repo = new_repo({"prompts/s.prompt.yml": header + test_data}, "  - path: prompts/*.yml\n")
    # The PR swaps the model, rewrites entry 2's reference and adds a fifth entry.
    rewritten_data = test_data.replace(f"expected: {TEXTS[1]}", "expected: anything") + (
        "  - text: one more\n    expected: one more\n"
    )
    head = header.replace("stub-model", "stub-model-2") + rewritten_data
    repo.builder.commit({"prompts/s.prompt.yml": head}, "New model, new references")
    run = repo.gate()

    (prompt,) = run.report.prompts
    assert prompt.change == "modified" and prompt.model == "stub-model-2"
    assert prompt.dataset_changed
    assert prompt.dataset_diff is not None
    assert prompt.dataset_diff.model_dump() == {
        "added": 1,
        "removed": 0,
        "reference_changed": 1,
        "vars_changed": 0,
    }
    assert "**The eval set (prompts/s.prompt.yml) changed in this PR**" in run.comment


def test_a_prompt_whose_text_and_eval_set_both_change_is_reported_once(new_repo) -> None:
    repo = new_repo()
    repo.builder.commit({"prompts/short.txt": "{{ text }} \n", SHARED: rewritten()}, "Both at once")
    run = repo.gate()

    changes = {p.path: p.change for p in run.report.prompts}
    assert changes == {"prompts/plain.txt": "unchanged", "prompts/short.txt": "modified"}
    short = next(p for p in run.report.prompts if p.path == "prompts/short.txt")
    assert short.dataset_changed and short.dataset_diff is not None
    assert short.dataset_diff.model_dump() == COUNTS
    assert run.comment.count("### prompts/short.txt") == 1  # passing: folded, no icon


def test_on_dataset_change_fail_fails_the_prompt_and_a_pr_cannot_turn_it_off(
    new_repo, tmp_path: Path, llm_stub: LLMStub
) -> None:
    repo = new_repo(extra=FAIL_ON_CHANGE)
    # The PR also switches the setting back to warn in its own config: the base config governs.
    head_config = config_yaml(llm_stub, tmp_path / "mlflow.db", prompts=PROMPTS)
    repo.builder.commit({SHARED: rewritten(), "promptgate.yaml": head_config}, "Easier")
    run = repo.gate()

    assert run.exit_code == 1 and run.report.verdict == "fail"
    for prompt in run.report.prompts:
        assert prompt.verdict == "fail" and all(m.status == "pass" for m in prompt.metrics.values())
        assert prompt.reason is not None
        assert "eval set changed in this PR" in prompt.reason
        assert "gate.on_dataset_change: fail" in prompt.reason
        assert "promptgate: accept-regression" in prompt.reason
    (change,) = run.report.config_changes
    assert (change.setting, change.base, change.head, change.loosens) == (
        "gate.on_dataset_change",
        "fail",
        "warn",
        True,
    )
    assert "> **Fails:** the eval set changed in this PR (" in run.comment
    assert "gate.on_dataset_change: fail" in run.terminal


def test_the_config_schema_knows_on_dataset_change() -> None:
    result = CliRunner().invoke(app, ["config-schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    setting = schema["$defs"]["GateSettings"]["properties"]["on_dataset_change"]
    assert setting["enum"] == ["warn", "fail"] and setting["default"] == "warn"


def test_the_eval_set_change_is_tagged_on_the_mlflow_runs(new_repo, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    repo = new_repo(extra=FAIL_ON_CHANGE)
    repo.builder.commit({SHARED: rewritten()}, "Easier references")
    run = repo.gate()

    client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}")
    assert run.report.mlflow.run_id is not None and run.report.mlflow.experiment_id is not None
    parent = client.get_run(run.report.mlflow.run_id)
    assert parent.data.tags["promptgate.dataset_changed"] == "true"
    assert parent.data.params["gate.on_dataset_change"] == "fail"
    children = client.search_runs(
        [run.report.mlflow.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 4  # baseline and candidate of both prompts
    for child in children:
        assert child.data.tags["promptgate.change"] == "unchanged"
        assert child.data.tags["promptgate.dataset_changed"] == "true"
        assert "eval set changed" in child.data.tags["promptgate.prompt_verdict_reason"]
        assert {k: int(v) for k, v in child.data.params.items() if k.startswith("dataset.")} == {
            f"dataset.{name}": count for name, count in COUNTS.items()
        }


def test_a_merge_that_changes_only_an_eval_set_registers_no_prompt_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from promptgate.action import main as action_main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    builder = RepoBuilder(tmp_path / "repo")
    config = (
        "version: 1\nprovider: { kind: offline, max_tokens: 64 }\n"
        f"prompts:\n{PROMPTS}"
        f"mlflow:\n  tracking_uri: {uri}\n  experiment: registry\n"
    )
    before = builder.commit({"promptgate.yaml": config, **FILES}, "Adopt promptgate")
    after = builder.commit({SHARED: rewritten()}, "Easier references")
    event = tmp_path / "event.json"
    event.write_text(json.dumps(push(before, after)))
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_WORKSPACE": str(builder.root),
        "GITHUB_REPOSITORY": "acme/prompts",
        "GITHUB_SHA": after,
        "INPUT_CONFIG": "promptgate.yaml",
    }
    saved = dict(os.environ)
    try:
        code = action_main(env, io.StringIO())
    finally:  # the Action trusts the workspace through git's environment variables
        os.environ.clear()
        os.environ.update(saved)

    report = Report.model_validate_json((builder.root / ".promptgate/report.json").read_text())
    assert code == 0
    assert {(p.path, p.change, p.dataset_changed) for p in report.prompts} == {
        ("prompts/plain.txt", "unchanged", True),
        ("prompts/short.txt", "unchanged", True),
    }
    assert MlflowClient(tracking_uri=uri, registry_uri=uri).search_prompts() == []
