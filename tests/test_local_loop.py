"""The local loop (issue 15): judge the edit not yet committed, a first commit with no base,
a subset while editing, and local state kept in `.promptgate/`. Real repositories, the CLI in
a fresh process, the LLM stub over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fresh_python import promptgate_cli
from gate_fixtures import API_KEY, API_KEY_ENV, TEXTS, config_yaml, jsonl
from gitrepo import RepoBuilder
from llm_stub import LLMStub

#: a developer's shell: not a CI job
LOCAL = {"CI": None, "GITHUB_ACTIONS": None, API_KEY_ENV: API_KEY}
CI = {"CI": "true", "GITHUB_ACTIONS": None, API_KEY_ENV: API_KEY}
PROMPT = "{{ text }}\n"
REGRESSED = "Ignore the request and add this preamble first. {{ text }}\n"


def two_prompts(
    llm_stub: LLMStub, tmp_path: Path, *, second: str = PROMPT, **config: Any
) -> dict[str, str]:
    """A config (`config_yaml` options) and two prompts, each with its eval set."""
    return {
        "promptgate.yaml": config_yaml(llm_stub, tmp_path / "mlflow.db", **config),
        "prompts/a.txt": PROMPT,
        "prompts/b.txt": second,
        "evals/a.jsonl": jsonl(),
        "evals/b.jsonl": jsonl(),
    }


@pytest.fixture
def repo(tmp_path: Path, llm_stub: LLMStub) -> RepoBuilder:
    """main: a config and two prompts with eval sets; then a `pr` branch, checked out."""
    builder = RepoBuilder(tmp_path / "repo")
    builder.commit(two_prompts(llm_stub, tmp_path))
    builder.branch("pr")
    return builder


def run(repo: RepoBuilder, *args: str, env: dict[str, str | None] = LOCAL) -> tuple[int, Any, str]:
    """`promptgate run ARGS` in the repository: exit code, JSON report (None when none was
    written) and the terminal output."""
    report = repo.root.parent / "report.json"
    report.unlink(missing_ok=True)
    done = promptgate_cli("run", "--report-json", str(report), *args, cwd=repo.root, env=env)
    data = json.loads(report.read_text()) if report.exists() else None
    return done.returncode, data, done.stdout + done.stderr


def verdicts(report: Any) -> dict[str, tuple[str, str]]:
    return {p["path"]: (p["change"], p["verdict"]) for p in report["prompts"]}


def git_state(repo: RepoBuilder) -> tuple[str, str, str, str]:
    """What a run must leave as it found it: status, refs, stash and the index file."""
    git = repo.repo.git
    return (
        git.status("--porcelain", "--untracked-files=all"),
        git.for_each_ref(),
        git.stash("list"),
        (repo.root / ".git/index").read_bytes().hex(),
    )


def test_an_uncommitted_edit_is_judged_as_the_working_tree_on_top_of_head(
    repo: RepoBuilder, llm_stub: LLMStub
) -> None:
    head = repo.repo.head.commit.hexsha
    (repo.root / "prompts/a.txt").write_text(REGRESSED)
    before = git_state(repo)

    code, report, output = run(repo, "--base", "main")

    assert code == 1, output
    assert report["head"] == {"ref": "working tree", "sha": head, "uncommitted": ["prompts/a.txt"]}
    assert verdicts(report) == {"prompts/a.txt": ("modified", "fail")}
    assert "working tree" in output and "prompts/a.txt" in output and "--head HEAD" in output
    sent = {m["content"] for r in llm_stub.requests for m in r.body["messages"]}
    assert any(text.startswith("Ignore the request") for text in sent)  # the edit went out
    assert "No prompt file changed" not in output
    assert git_state(repo) == before  # status, refs, stash and index untouched
    tags = parent_run_tags(repo.root.parent / "mlflow.db", report["mlflow"]["run_id"])
    assert tags["promptgate.head.ref"] == "working tree" and tags["promptgate.head.sha"] == head
    assert tags["promptgate.head.uncommitted"] == "prompts/a.txt"
    assert tags["mlflow.runName"].endswith("..working tree")


def parent_run_tags(store: Path, run_id: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return dict(MlflowClient(tracking_uri=f"sqlite:///{store}").get_run(run_id).data.tags)


def test_head_head_judges_the_last_commit_alone(repo: RepoBuilder) -> None:
    (repo.root / "prompts/a.txt").write_text(REGRESSED)
    code, report, output = run(repo, "--base", "main", "--head", "HEAD")
    assert code == 0, output
    assert report["prompts"] == [] and report["head"]["ref"] == "HEAD"
    assert report["head"]["uncommitted"] is None


def test_an_untracked_prompt_matching_the_glob_is_judged_as_new_with_its_eval_set(
    repo: RepoBuilder,
) -> None:
    (repo.root / "prompts/c.txt").write_text(PROMPT)
    (repo.root / "evals/c.jsonl").write_text(jsonl(TEXTS[:4]))
    (repo.root / "notes.txt").write_text("not a prompt: never read")
    code, report, output = run(repo, "--base", "main")
    assert code == 0, output
    assert verdicts(report) == {"prompts/c.txt": ("added", "new")}
    assert report["prompts"][0]["examples"] == 4
    assert report["head"]["uncommitted"] == ["evals/c.jsonl", "prompts/c.txt"]


def test_a_staged_prompt_is_judged_with_its_eval_set(repo: RepoBuilder) -> None:
    (repo.root / "prompts/c.txt").write_text(PROMPT)
    (repo.root / "evals/c.jsonl").write_text(jsonl(TEXTS[:4]))
    repo.repo.git.add("prompts/c.txt", "evals/c.jsonl")  # in the index, in no commit
    code, report, output = run(repo, "--base", "main")
    assert code == 0, output
    assert verdicts(report) == {"prompts/c.txt": ("added", "new")}
    assert report["head"]["uncommitted"] == ["evals/c.jsonl", "prompts/c.txt"]


def test_a_prompt_deleted_but_not_committed_is_removed(repo: RepoBuilder) -> None:
    (repo.root / "prompts/b.txt").unlink()
    code, report, output = run(repo, "--base", "main")
    assert code == 0, output
    assert verdicts(report) == {"prompts/b.txt": ("deleted", "removed")}


def test_an_uncommitted_eval_set_change_is_judged_on_the_prompts_that_use_it(
    repo: RepoBuilder,
) -> None:
    (repo.root / "evals/a.jsonl").write_text(jsonl(TEXTS[:6]))
    code, report, output = run(repo, "--base", "main")
    assert code == 0, output
    assert verdicts(report) == {"prompts/a.txt": ("unchanged", "pass")}
    assert report["prompts"][0]["dataset_changed"] is True
    assert report["prompts"][0]["examples"] == 6


def test_worktree_says_so_when_nothing_is_uncommitted(repo: RepoBuilder) -> None:
    repo.commit({"prompts/a.txt": "Say: {{ text }}\n"})
    code, report, output = run(repo, "--base", "main", "--worktree")
    assert code in (0, 1), output
    assert report["head"]["ref"] == "HEAD"
    assert any("no uncommitted change" in note for note in report["notes"])


def test_a_ci_run_never_reads_the_working_tree(repo: RepoBuilder) -> None:
    """Under CI an uncommitted file is not a side: the head is the commit."""
    (repo.root / "prompts/a.txt").write_text(REGRESSED)
    code, report, output = run(repo, "--base", "main", env=CI)
    assert code == 0, output
    assert report["prompts"] == [] and report["head"]["ref"] == "HEAD"
    code, report, output = run(repo, "--base", "main", "--worktree", env=CI)
    assert code == 2 and report is None
    assert "CI run" in output and "commit the files" in output


def test_worktree_and_head_together_are_bad_input(repo: RepoBuilder) -> None:
    code, _, output = run(repo, "--worktree", "--head", "pr")
    assert code == 2 and "drop --head" in output
    code, _, output = run(repo, "--limit", "2", "--shard", "1/2")
    assert code == 2 and "--shard judges commits in full" in output


def test_a_linked_prompt_in_the_working_tree_is_refused_not_followed(
    repo: RepoBuilder, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("API_TOKEN=do-not-send {{ text }}")
    (repo.root / "prompts/a.txt").unlink()
    (repo.root / "prompts/a.txt").symlink_to(secret)
    code, report, output = run(repo, "--base", "main")
    assert code == 2, output
    assert "prompts/a.txt" in output and "symbolic link" in output
    assert "do-not-send" not in json.dumps(report)


def test_rerunning_after_a_one_word_edit_calls_only_for_the_changed_side(
    repo: RepoBuilder, llm_stub: LLMStub
) -> None:
    (repo.root / "prompts/a.txt").write_text("Repeat: {{ text }}\n")
    code, report, output = run(repo, "--base", "main")
    assert code in (0, 1), output
    assert llm_stub.request_count == 2 * len(TEXTS)  # both versions, once

    (repo.root / "prompts/a.txt").write_text("Echo: {{ text }}\n")  # one word changed
    code, report, output = run(repo, "--base", "main")
    assert code in (0, 1), output
    assert llm_stub.request_count == 3 * len(TEXTS)  # only the new text's answers
    assert report["calls"]["cached"] == len(TEXTS) and report["calls"]["made"] == len(TEXTS)


def test_a_first_commit_with_all_judges_every_prompt_as_new(
    tmp_path: Path, llm_stub: LLMStub
) -> None:
    builder = RepoBuilder(tmp_path / "fresh")
    builder.commit(two_prompts(llm_stub, tmp_path, second=REGRESSED))
    for args in (["--all"], []):
        code, report, output = run(builder, *args)
        assert code == 0, output
        assert verdicts(report) == {
            "prompts/a.txt": ("added", "new"),
            "prompts/b.txt": ("added", "new"),
        }
        assert report["base"]["ref"] == "(no base)"
        assert any(note.startswith("No base") for note in report["notes"])
        assert all(p["metrics"]["bleu"]["candidate"] is not None for p in report["prompts"])


def test_on_a_first_commit_only_min_can_fail_a_prompt(tmp_path: Path, llm_stub: LLMStub) -> None:
    builder = RepoBuilder(tmp_path / "fresh")
    floor = "  bleu: { max_drop: 2.0, min: 90 }\n  rougeL: { max_drop: 0.02 }\n"
    builder.commit(two_prompts(llm_stub, tmp_path, second=REGRESSED, metrics=floor))
    code, report, output = run(builder, "--all")
    assert code == 1, output
    assert verdicts(report) == {
        "prompts/a.txt": ("added", "new"),
        "prompts/b.txt": ("added", "fail"),
    }


def test_a_misspelt_base_is_still_bad_input_on_a_first_commit(
    tmp_path: Path, llm_stub: LLMStub
) -> None:
    builder = RepoBuilder(tmp_path / "fresh")
    builder.commit({"promptgate.yaml": config_yaml(llm_stub, tmp_path / "mlflow.db")})
    code, _, output = run(builder, "--base", "mian")
    assert code == 2 and "'mian' is not a commit" in output


def test_a_subset_run_is_partial_and_refused_under_ci(repo: RepoBuilder) -> None:
    (repo.root / "prompts/a.txt").write_text(REGRESSED)
    code, report, output = run(repo, "--base", "main", "--limit", "3")
    assert code == 1, output
    assert report["partial"] == {"limit": 3, "example_ids": [], "examples": 3, "of": len(TEXTS)}
    tags = parent_run_tags(repo.root.parent / "mlflow.db", report["mlflow"]["run_id"])
    assert tags["promptgate.partial"] == "3 of 12 examples"
    assert tags["mlflow.runName"].endswith("(partial)")
    assert report["prompts"][0]["examples"] == 3
    assert "Partial run: 3 of 12 examples" in output and "not a verdict" in output
    assert "gate failed (partial: 3 of 12 examples)" in output

    code, report, output = run(repo, "--base", "main", "--examples", "ex-1,ex-4")
    assert code == 0, output  # two examples cannot make a drop significant
    assert report["partial"]["examples"] == 2 and report["partial"]["example_ids"] == [
        "ex-1",
        "ex-4",
    ]

    for args in (["--limit", "3"], ["--examples", "ex-1"]):
        code, report, output = run(repo, "--base", "main", "--head", "HEAD", *args, env=CI)
        assert code == 2 and report is None, output
        assert "never a verdict for CI" in output

    code, report, output = run(repo, "--base", "main", "--examples", "ex-1,ex-99")
    assert code == 2 and "ex-99" in output


def test_the_local_store_and_its_artifacts_live_in_the_ignored_state_directory(
    tmp_path: Path, llm_stub: LLMStub
) -> None:
    """With no tracking URI anywhere, MLflow's `sqlite:///mlflow.db` is kept in `.promptgate/`,
    which git ignores: nothing new shows up next to files people `git add -A`."""
    builder = RepoBuilder(tmp_path / "repo")
    config = config_yaml(llm_stub, tmp_path / "unused.db").split("mlflow:\n")[0]
    builder.commit({"promptgate.yaml": config, "prompts/a.txt": PROMPT, "evals/a.jsonl": jsonl()})
    builder.branch("pr")
    builder.commit({"prompts/a.txt": "Say: {{ text }}\n"})
    env = {**LOCAL, "MLFLOW_TRACKING_URI": None}

    code, report, output = run(builder, "--base", "main", env=env)

    assert code in (0, 1), output
    store = (builder.root / ".promptgate/mlflow.db").resolve()
    assert store.is_file() and report["mlflow"]["run_id"]
    assert report["mlflow"]["tracking_uri"] == f"sqlite:///{store.as_posix()}"
    assert f"mlflow ui --backend-store-uri sqlite:///{store.as_posix()}" in output
    assert not (builder.root / "mlflow.db").exists() and not (builder.root / "mlartifacts").exists()
    assert builder.repo.git.status("--porcelain", "--untracked-files=all") == ""
    artifacts = builder.root / ".promptgate/mlartifacts"
    assert any(artifacts.rglob("*")), "the run's artifacts sit beside the store"

    listed = promptgate_cli("registry", "--json", cwd=builder.root / "prompts", env=env)
    assert listed.returncode == 0, listed.stderr  # found from a subdirectory, not a new store
    assert not (builder.root / "prompts/mlflow.db").exists()


def test_the_verdict_is_printed_before_mlflow_is_logged(repo: RepoBuilder) -> None:
    """The tracking server holds every connection unanswered: the verdict line must have
    arrived before MLflow first connects, not after its logging gives up."""
    repo.commit({"prompts/a.txt": REGRESSED})
    connected: list[float] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)
        port = server.getsockname()[1]
        held: list[socket.socket] = []

        def hold() -> None:
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = server.accept()
                    connected.append(time.monotonic())
                    held.append(conn)

        threading.Thread(target=hold, daemon=True).start()
        env = {**os.environ, **{k: v for k, v in LOCAL.items() if v is not None}}
        env |= {"HF_HUB_OFFLINE": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}
        env = {k: v for k, v in env.items() if k not in ("CI", "GITHUB_ACTIONS")}
        command = [sys.executable, "-m", "promptgate", "run", "--base", "main"]
        command += ["--mlflow-tracking-uri", f"http://127.0.0.1:{port}"]
        process = subprocess.Popen(
            command, cwd=repo.root, env=env, stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        verdict_at = None
        for line in process.stdout:
            if verdict_at is None and "gate failed" in line:
                verdict_at = time.monotonic()
        assert process.wait(timeout=300) == 1
        for conn in held:
            conn.close()
    assert verdict_at is not None and connected, "no verdict line, or MLflow never connected"
    assert verdict_at < connected[0]


if os.name != "posix":  # pragma: no cover - symbolic links and git's modes need POSIX
    pytestmark = pytest.mark.skip("POSIX only")
