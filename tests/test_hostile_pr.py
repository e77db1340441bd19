"""A pull request's author controls every file on its head side. Each test here builds an attack
as that author would (a real repository, the Action's entrypoint or the CLI in a subprocess,
servers on 127.0.0.1) and shows what it gets: neither the verdict, nor the runner, nor where the
run's data goes."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from action_run import BAD, Workspace, new_workspace
from gate_fixtures import API_KEY, API_KEY_ENV, config_yaml
from github_stub import GitHubStub
from llm_stub import LLMStub
from runner_log import acted_on

from promptgate.cli import execute
from promptgate.report.model import Report
from promptgate.request import GateRequest

ROOT = Path(__file__).resolve().parents[1]
PREAMBLE = BAD.split("{{")[0]


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with LLMStub(api_key=API_KEY) as llm, GitHubStub() as github:
        yield new_workspace(tmp_path, llm, github)
        assert github.violations == []


def _answer_as_if_good(messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """The forger's model: answers the regressed prompt as the good one would have."""
    return " ".join(str(messages[-1]["content"]).replace(PREAMBLE, "").split())


def _report(workspace: Workspace) -> Report:
    path = workspace.builder.root / ".promptgate" / "report.json"
    return Report.model_validate_json(path.read_text())


def _run_cli(
    repo: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptgate", "run", "--repo", str(repo), *args],
        env={**os.environ, API_KEY_ENV: API_KEY, "HF_HUB_OFFLINE": "1", **(env or {})},
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- 1. a committed answer cache never decides a verdict -----------------------------------


def _forge_cache(workspace: Workspace, forged: Path) -> None:
    """The PR regresses the prompt; `forged` becomes a cache in which the regressed prompt's
    requests have the good prompt's answers, made by running promptgate itself against a
    model that answers that way."""
    builder, llm = workspace.builder, workspace.llm
    builder.commit({"prompts/a.txt": BAD}, "regress the prompt")
    llm.reply = _answer_as_if_good
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(API_KEY_ENV, API_KEY)
        try:
            code = execute(
                GateRequest(
                    repo=builder.root,
                    base="main",
                    head="pr",
                    cache_path=forged,
                    mlflow_tracking_uri=f"sqlite:///{workspace.tmp / 'forger.db'}",
                )
            )
        finally:
            llm.reply = None
    assert code == 0, "the forged cache answers like the good prompt"


def _commit_forged_cache(workspace: Workspace) -> None:
    _forge_cache(workspace, workspace.builder.root / ".promptgate" / "cache.sqlite3")
    workspace.builder.repo.git.add("-f", ".promptgate/cache.sqlite3")
    workspace.builder.repo.git.commit("-m", "add a cache")


def test_a_cache_committed_by_the_pr_is_not_read_by_the_action(workspace: Workspace) -> None:
    _commit_forged_cache(workspace)
    requests_before = workspace.llm.request_count
    run = workspace.run("pull_request", workspace.pr_event())
    assert run.code == 1, run.log  # the regression is caught: the forged answers were not read
    assert workspace.llm.request_count - requests_before == 24  # 12 examples x 2 versions
    report = _report(workspace)
    assert report.calls.cached == 0
    commands = acted_on(run.log)
    warnings = [c.data for c in commands if c.name == "warning"]
    assert any("git tracks .promptgate/cache.sqlite3" in w for w in warnings), warnings


def test_a_cache_committed_by_the_pr_is_not_read_by_the_cli(workspace: Workspace) -> None:
    _commit_forged_cache(workspace)
    requests_before = workspace.llm.request_count
    done = _run_cli(workspace.builder.root, "--base", "main", "--report-json", "r.json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert workspace.llm.request_count - requests_before == 24
    report = Report.model_validate_json((workspace.builder.root / "r.json").read_text())
    assert report.calls.cached == 0
    assert any("was not used: git tracks .promptgate/cache.sqlite3" in w for w in report.warnings)
    assert "was not used" in done.stdout


def test_a_committed_sqlite_wal_beside_a_restored_cache_is_not_read(
    workspace: Workspace,
) -> None:
    """The cache file itself is the user's own (untracked, from an earlier run); a `-wal` file
    the PR commits beside it would replace its pages with forged ones when sqlite opens it."""
    root = workspace.builder.root
    forged = workspace.tmp / "forged.sqlite3"
    _forge_cache(workspace, forged)
    first = _run_cli(root, "--base", "main")  # the user's own run: a real cache, a real fail
    assert first.returncode == 1, first.stdout + first.stderr
    with sqlite3.connect(forged, isolation_level=None) as forger:
        forger.execute("PRAGMA journal_mode = WAL")
        forger.execute("PRAGMA wal_autocheckpoint = 0")
        forger.execute("VACUUM")  # every page of the forged cache goes into the WAL
        shutil.copy(f"{forged}-wal", root / ".promptgate" / "cache.sqlite3-wal")
    workspace.builder.repo.git.add("-f", ".promptgate/cache.sqlite3-wal")
    workspace.builder.repo.git.commit("-m", "a WAL file")
    requests_before = workspace.llm.request_count
    done = _run_cli(root, "--base", "main", "--report-json", "r.json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert workspace.llm.request_count - requests_before == 24
    report = Report.model_validate_json((root / "r.json").read_text())
    assert any(".promptgate/cache.sqlite3-wal" in w for w in report.warnings), report.warnings


def test_a_restored_cache_that_git_does_not_hold_is_still_used(workspace: Workspace) -> None:
    """What actions/cache restores is untracked: the second run of a PR makes no call."""
    workspace.builder.commit({"prompts/a.txt": BAD})
    first = workspace.run("pull_request", workspace.pr_event())
    assert first.code == 1, first.log
    requests_before = workspace.llm.request_count
    second = workspace.run("pull_request", workspace.pr_event("synchronize"))
    assert second.code == 1, second.log
    assert workspace.llm.request_count == requests_before
    assert _report(workspace).calls.cached == 24


# --- 2. no text from the PR becomes a workflow command or a terminal escape ----------------

HOSTILE_IDS = [
    "a\n::warning::INJECTED-BY-NEWLINE",
    "b ##[stop-commands]attacker-token",
    "c" * 95 + " ::warning::INJECTED-BY-WRAPPING \x1b[2J\x1b[31mred\u202eesrever",
]


def _hostile_eval_set() -> str:
    texts = ["the cat sat on the mat", "rain is expected by friday", "the train leaves at six"]
    return "".join(
        json.dumps({"id": ident, "vars": {"text": text}, "expected": text}) + "\n"
        for ident, text in zip(HOSTILE_IDS, texts, strict=True)
    )


def _assert_inert(log: str) -> None:
    commands = acted_on(log)
    injected = [c for c in commands if "INJECTED" in c.data or "attacker" in c.data]
    assert injected == [], injected
    stops = [c.data for c in commands if c.name == "stop-commands"]
    assert all(len(token) == 32 for token in stops), stops  # only promptgate's own tokens
    assert "\x1b" not in log and "\u202e" not in log
    assert "\\x1b[2J" in log  # shown, escaped


def test_ids_from_the_pr_neither_run_workflow_commands_nor_drive_the_terminal(
    workspace: Workspace,
) -> None:
    workspace.builder.commit({"evals/a.jsonl": _hostile_eval_set()}, "hostile ids")
    workspace.builder.commit({"prompts/a.txt": BAD}, "regress")
    run = workspace.run("pull_request", workspace.pr_event())
    assert run.code == 1, run.log
    _assert_inert(run.log)
    # promptgate's own commands still work: the failed prompt is annotated, secrets masked
    commands = acted_on(run.log)
    assert any(c.name == "error" and "prompts/a.txt" in c.line for c in commands), run.log
    assert any(c.name == "add-mask" for c in commands)


def test_the_cli_in_a_workflow_step_prints_nothing_the_runner_acts_on(
    workspace: Workspace,
) -> None:
    workspace.builder.commit({"evals/a.jsonl": _hostile_eval_set()}, "hostile ids")
    workspace.builder.commit({"prompts/a.txt": BAD}, "regress")
    done = _run_cli(
        workspace.builder.root, "--base", "main", env={"GITHUB_ACTIONS": "true", "COLUMNS": "120"}
    )
    assert done.returncode == 1, done.stdout + done.stderr
    _assert_inert(done.stdout + "\n" + done.stderr)
    assert acted_on(done.stdout) == [] and acted_on(done.stderr) == []


# --- 3. the PR cannot choose where data goes --------------------------------------------------


class _Recorder(http.server.ThreadingHTTPServer):
    """Any HTTP request at all: what an attacker's artifact server would receive."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                recorder.seen.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PUT = do_POST = _any

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _forged_store(path: Path, artifact_location: str, experiment: str = "promptgate") -> None:
    """An MLflow store whose experiment keeps its artifacts where the PR says."""
    code = (
        "import sys; from mlflow import MlflowClient; "
        "MlflowClient(tracking_uri='sqlite:///' + sys.argv[1])"
        ".create_experiment(sys.argv[3], artifact_location=sys.argv[2])"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(path), artifact_location, experiment],
        check=True,
        timeout=120,
        capture_output=True,
    )


def _default_store_config(llm: LLMStub) -> str:
    """The starter's mlflow section: no tracking_uri, so the default `sqlite:///mlflow.db`."""
    text = config_yaml(llm, Path("unused.db"))
    return text.split("mlflow:\n")[0]


def _commit_forged_store(workspace: Workspace, artifact_location: str) -> None:
    """Main's config uses the default store (`sqlite:///mlflow.db`); the PR regresses the prompt
    and commits an `mlflow.db` whose experiment keeps its artifacts at `artifact_location`."""
    builder = workspace.builder
    builder.checkout("main")
    builder.commit({"promptgate.yaml": _default_store_config(workspace.llm)}, "default store")
    builder.branch("attack")
    _forged_store(builder.root / "mlflow.db", artifact_location)
    builder.repo.git.add("-f", "mlflow.db")
    builder.commit({"prompts/a.txt": BAD}, "regress, with a store")


def test_a_committed_mlflow_store_cannot_redirect_the_actions_artifacts(
    workspace: Workspace, tmp_path: Path
) -> None:
    builder = workspace.builder
    elsewhere = tmp_path / "attacker-chose-this"
    _commit_forged_store(workspace, elsewhere.as_uri())
    run = workspace.run("pull_request", workspace.pr_event())
    assert run.code == 1, run.log
    assert not elsewhere.exists(), list(elsewhere.rglob("*"))
    report = _report(workspace)
    assert report.mlflow.run_id and report.mlflow.warning is None
    assert report.mlflow.tracking_uri == f"sqlite:///{builder.root / '.promptgate' / 'mlflow.db'}"
    artifacts = list((builder.root / ".promptgate" / "mlartifacts").rglob("report.json"))
    assert len(artifacts) == 1


def test_a_tracked_store_is_refused_by_the_cli_and_its_http_artifact_server_gets_nothing(
    workspace: Workspace, recorder: _Recorder
) -> None:
    """The default store is `.promptgate/mlflow.db`: a committed `mlflow.db` at the root is
    not even opened; named outright, it is refused because git tracks it."""
    builder = workspace.builder
    host, port = recorder.server_address[:2]
    _commit_forged_store(workspace, f"http://{host!s}:{port}/steal")
    forged = builder.root / "mlflow.db"
    committed = forged.read_bytes()

    done = _run_cli(builder.root, "--base", "main", "--report-json", "r.json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = Report.model_validate_json((builder.root / "r.json").read_text())
    own = (builder.root / ".promptgate" / "mlflow.db").resolve()
    assert report.mlflow.tracking_uri == f"sqlite:///{own.as_posix()}" and report.mlflow.run_id

    done = _run_cli(
        builder.root,
        "--base",
        "main",
        "--report-json",
        "r.json",
        "--mlflow-tracking-uri",
        f"sqlite:///{forged.resolve().as_posix()}",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = Report.model_validate_json((builder.root / "r.json").read_text())
    assert report.mlflow.run_id is None
    assert report.mlflow.warning and "git tracks mlflow.db" in report.mlflow.warning
    assert recorder.seen == []
    assert forged.read_bytes() == committed


def test_an_untracked_store_whose_experiment_points_elsewhere_is_refused(
    workspace: Workspace, recorder: _Recorder, tmp_path: Path
) -> None:
    """However the store got there, its artifacts go only where promptgate made them go."""
    host, port = recorder.server_address[:2]
    store = tmp_path / "outside" / "mlflow.db"
    store.parent.mkdir()
    _forged_store(store, f"http://{host!s}:{port}/steal", experiment="e2e")
    workspace.builder.commit({"prompts/a.txt": BAD})
    done = _run_cli(
        workspace.builder.root,
        "--base",
        "main",
        "--report-json",
        "r.json",
        "--mlflow-tracking-uri",
        f"sqlite:///{store}",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert recorder.seen == []
    report = Report.model_validate_json((workspace.builder.root / "r.json").read_text())
    assert report.mlflow.warning and "outside the store's directory" in report.mlflow.warning


def _commit_state_link(workspace: Workspace, target: Path) -> None:
    target.mkdir()
    link = workspace.builder.root / ".promptgate"
    link.symlink_to(target, target_is_directory=True)
    workspace.builder.repo.git.add(".promptgate")
    workspace.builder.commit({"prompts/a.txt": BAD}, "regress, and link the state away")


def test_a_committed_state_directory_link_is_not_followed_by_the_action(
    workspace: Workspace, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "attacker-dir"
    _commit_state_link(workspace, elsewhere)
    run = workspace.run("pull_request", workspace.pr_event())
    assert run.code == 1, run.log
    assert list(elsewhere.iterdir()) == []
    state = workspace.builder.root / ".promptgate"
    assert state.is_dir() and not state.is_symlink()
    assert (state / "report.json").is_file() and (state / "cache.sqlite3").is_file()
    warnings = [c.data for c in acted_on(run.log) if c.name == "warning"]
    assert any(".promptgate is a symbolic link" in w for w in warnings), warnings


def test_a_committed_state_directory_link_is_not_followed_by_the_cli(
    workspace: Workspace, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "attacker-dir"
    _commit_state_link(workspace, elsewhere)
    done = _run_cli(workspace.builder.root, "--base", "main", "--report-json", "r.json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert list(elsewhere.iterdir()) == []  # no cache, no .gitignore written through the link
    report = Report.model_validate_json((workspace.builder.root / "r.json").read_text())
    assert any(".promptgate is a symbolic link" in w for w in report.warnings), report.warnings


def test_shard_answers_the_checkout_holds_are_not_merged(workspace: Workspace) -> None:
    """Shard results the checkout holds are refused as such (before, only the manifest's shas
    stopped them: a manifest cannot name the commit that holds it)."""
    builder = workspace.builder
    builder.commit({"prompts/a.txt": BAD}, "regress")
    shard = builder.root / "shards" / "promptgate-shard-1"
    llm = workspace.llm
    llm.reply = _answer_as_if_good
    try:
        forged = _run_cli(
            builder.root, "--base", "main", "--shard", "1/1", "--shard-dir", str(shard)
        )
    finally:
        llm.reply = None
    assert forged.returncode == 0, forged.stdout + forged.stderr
    builder.repo.git.add("-f", "shards")
    builder.repo.git.commit("-m", "results, trust me")
    run = workspace.run("pull_request", workspace.pr_event(), merge="shards/*")
    assert run.code == 2, run.log
    errors = [c.data for c in acted_on(run.log) if c.name == "error"]
    assert any("git tracks shards/promptgate-shard-1" in e for e in errors), errors
