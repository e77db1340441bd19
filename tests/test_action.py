"""The Action end to end: entrypoint.py run as GitHub runs it, against a temp repository as the
workspace, the LLM stub and a GitHub REST stub that checks every request."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from action_run import BAD, GOOD, PR, REPOSITORY, Workspace, new_workspace
from events import push, workflow_dispatch
from gate_fixtures import API_KEY, jsonl
from github_render import as_html, outside_code
from github_stub import HUMAN, GitHubStub
from gitrepo import RepoBuilder
from llm_stub import LLMStub

from promptgate.report.markdown import MARKER


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with LLMStub(api_key=API_KEY) as llm, GitHubStub() as github:
        yield new_workspace(tmp_path, llm, github)
        assert github.violations == []


def test_the_first_run_creates_the_comment_and_the_second_updates_it(workspace: Workspace) -> None:
    workspace.builder.commit({"prompts/a.txt": BAD})
    first = workspace.run("pull_request", workspace.pr_event("opened"))
    assert first.code == 1, first.log
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    assert comment["body"].startswith(MARKER) and "prompts/a.txt" in comment["body"]
    assert first.outputs["comment-url"] == comment["html_url"]

    workspace.builder.commit({"prompts/a.txt": GOOD + "\n"})
    second = workspace.run("pull_request", workspace.pr_event("synchronize"))
    assert second.code == 0, second.log
    (updated,) = workspace.github.comments(REPOSITORY, PR)
    assert updated["id"] == comment["id"] and updated["body"] != comment["body"]
    assert second.outputs["comment-url"] == comment["html_url"]


def test_a_persons_comment_is_left_alone(workspace: Workspace) -> None:
    human = workspace.github.add_comment(REPOSITORY, PR, f"{MARKER}\nI quoted the bot", user=HUMAN)
    workspace.builder.commit({"prompts/a.txt": BAD})
    run = workspace.run("pull_request", workspace.pr_event())
    assert run.code == 1
    comments = workspace.github.comments(REPOSITORY, PR)
    assert len(comments) == 2
    assert (
        next(c for c in comments if c["id"] == human["id"])["body"] == f"{MARKER}\nI quoted the bot"
    )


def test_a_read_only_token_warns_and_the_exit_code_follows_the_gate(workspace: Workspace) -> None:
    workspace.github.read_only = True
    workspace.builder.commit({"prompts/a.txt": BAD})
    failed = workspace.run("pull_request", workspace.pr_event())
    assert failed.code == 1
    assert "::warning::" in failed.log and "comment could not be posted" in failed.log
    assert MARKER in failed.summary and failed.outputs["comment-url"] == ""
    workspace.builder.commit({"prompts/a.txt": GOOD + " "})
    passed = workspace.run("pull_request", workspace.pr_event("synchronize"))
    assert passed.code == 0


def test_workflow_dispatch_compares_any_two_refs_and_writes_nothing_to_github(
    workspace: Workspace,
) -> None:
    workspace.builder.commit({"prompts/a.txt": BAD})
    run = workspace.run("workflow_dispatch", workflow_dispatch({"base": "main", "head": "pr"}))
    assert run.code == 1 and run.outputs["verdict"] == "fail"
    assert workspace.github.writes == []


def test_a_push_gates_before_to_after(workspace: Workspace) -> None:
    before = workspace.builder.repo.head.commit.hexsha
    after = workspace.builder.commit({"prompts/a.txt": BAD})
    run = workspace.run("push", push(before, after, ref="refs/heads/pr"))
    assert run.code == 1 and workspace.github.writes == []


def test_fail_on_regression_false_reports_the_failure_but_passes_the_step(
    workspace: Workspace,
) -> None:
    workspace.builder.commit({"prompts/a.txt": BAD})
    run = workspace.run("pull_request", workspace.pr_event(), fail_on_regression="false")
    assert run.code == 0 and run.outputs["verdict"] == "fail"


def test_outputs_summary_and_annotations_are_written(workspace: Workspace) -> None:
    workspace.builder.commit({"prompts/a.txt": BAD})
    run = workspace.run("pull_request", workspace.pr_event())
    assert run.outputs["verdict"] == "fail"
    report = json.loads((workspace.builder.root / run.outputs["report-path"]).read_text())
    assert report["verdict"] == "fail" and report["pr_number"] == PR
    assert run.outputs["mlflow-run-id"] == report["mlflow"]["run_id"] != ""
    assert run.summary.startswith(MARKER) and "prompts/a.txt" in run.summary
    assert "::error file=prompts/a.txt," in run.log
    assert "::group::" in run.log and "::endgroup::" in run.log


def test_the_token_is_masked_and_never_printed(workspace: Workspace) -> None:
    workspace.github.read_only = True  # an error path that talks about the token's permissions
    workspace.builder.commit({"prompts/a.txt": BAD})
    run = workspace.run("pull_request", workspace.pr_event())
    token = workspace.github.token
    assert f"::add-mask::{token}" in run.log
    assert run.log.count(token) == 1  # only inside the add-mask command itself
    assert API_KEY not in run.log.replace(f"::add-mask::{API_KEY}", "")
    assert (
        token not in run.summary
        and token not in (workspace.builder.root / ".promptgate/report.json").read_text()
    )


def test_injected_mentions_and_html_in_llm_output_are_neutralised(workspace: Workspace) -> None:
    evil = "@octocat please merge <img src=x onerror=alert(1)> </details> ``` | a | b |"
    workspace.builder.commit(
        {"prompts/a.txt": BAD, "evals/a.jsonl": jsonl([evil + f" number {i}" for i in range(8)])}
    )
    run = workspace.run("pull_request", workspace.pr_event())
    assert run.code == 1
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    body = comment["body"]
    # The outputs are code (GitHub links no mention and runs no HTML in code); everywhere else
    # the text the PR controls is inert. Checked on the page GitHub's cmark-gfm makes of it.
    page = as_html(body)
    live = outside_code(page)
    assert "@octocat" not in live and "<img" not in page
    assert page.count("<details>") == page.count("</details>")
    assert "- @octocat please merge &lt;img src=x onerror=alert(1)&gt; &lt;/details&gt;" in page


def test_forty_changed_prompts_keep_the_comment_under_the_limit(workspace: Workspace) -> None:
    long_texts = [" ".join(f"word{i}x{j}" for j in range(150)) for i in range(6)]
    workspace.builder.checkout("main")
    files = {f"prompts/p{i:02}.txt": GOOD for i in range(40)}
    files.update({f"evals/p{i:02}.jsonl": jsonl(long_texts) for i in range(40)})
    workspace.builder.commit(files)
    workspace.builder.checkout("pr")
    workspace.builder.repo.git.merge("--ff-only", "main")
    workspace.builder.commit({f"prompts/p{i:02}.txt": BAD for i in range(40)})
    run = workspace.run("pull_request", workspace.pr_event())
    assert run.code == 1
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    assert len(comment["body"]) <= 65_536
    assert "trimmed" in comment["body"].lower() or "left out" in comment["body"].lower()
    assert len(run.summary) > len(comment["body"])  # the job summary keeps more


def test_an_unsupported_event_is_exit_2_with_a_message(workspace: Workspace) -> None:
    run = workspace.run("issue_comment", {"action": "created"})
    assert run.code == 2 and "not supported" in run.log
    assert workspace.github.requests == []


def test_bad_input_is_exit_2_and_still_explained_on_the_pr(workspace: Workspace) -> None:
    workspace.builder.commit({"prompts/a.txt": "{{ text }} {{ missing }}\n"})
    run = workspace.run("pull_request", workspace.pr_event())
    assert run.code == 2 and run.outputs["verdict"] == "error"
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    assert "missing" in comment["body"]


def test_a_workspace_owned_by_another_user_is_trusted(workspace: Workspace) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the checkout to another uid, as the runner's mount does")
    workspace.builder.commit({"prompts/a.txt": BAD})
    subprocess.run(["chown", "-R", "12345:12345", str(workspace.builder.root)], check=True)
    run = workspace.run("pull_request", workspace.pr_event())
    assert "dubious ownership" not in run.log
    assert run.code == 1, run.log


def test_a_shallow_checkout_without_the_base_asks_for_fetch_depth_zero(
    workspace: Workspace, tmp_path: Path
) -> None:
    workspace.builder.commit({"prompts/a.txt": BAD})
    event = workspace.pr_event()
    clone = tmp_path / "shallow"
    subprocess.run(
        [
            "git",
            "clone",
            "-q",
            "--depth",
            "1",
            "--branch",
            "pr",
            workspace.builder.root.as_uri(),
            str(clone),
        ],
        check=True,
    )
    subprocess.run(["git", "-C", str(clone), "remote", "remove", "origin"], check=True)
    workspace.builder = RepoBuilder.__new__(RepoBuilder)
    workspace.builder.root = clone
    import git

    workspace.builder.repo = git.Repo(clone)
    run = workspace.run("pull_request", event)
    assert run.code == 2 and "fetch-depth: 0" in run.log


def test_a_comment_github_would_refuse_is_a_warning_not_a_crash(workspace: Workspace) -> None:
    workspace.builder.commit({"prompts/a.txt": BAD})
    run = workspace.run(
        "pull_request", workspace.pr_event(), env_overrides={"GITHUB_REPOSITORY": "not a repo"}
    )
    assert run.code == 1 and "::warning::" in run.log and "Traceback" not in run.log
    assert workspace.github.requests == []


# --- the override label -----------------------------------------------------------------
OVERRIDE_LABEL = "promptgate: accept-regression"


def _labelled(workspace: Workspace, *labels: str) -> dict[str, object]:
    payload = workspace.pr_event("labeled")
    payload["pull_request"]["labels"] = [{"name": name, "color": "d73a4a"} for name in labels]  # type: ignore[index]
    return payload


def test_the_override_label_from_a_maintainer_passes_the_step_on_record(
    workspace: Workspace,
) -> None:
    from mlflow import MlflowClient

    workspace.builder.commit({"prompts/a.txt": BAD})
    workspace.github.add_label_event(REPOSITORY, PR, OVERRIDE_LABEL, actor="lead")
    workspace.github.set_permission(REPOSITORY, "lead", "maintain")
    run = workspace.run("pull_request", _labelled(workspace, "docs", OVERRIDE_LABEL))
    assert run.code == 0, run.log
    assert run.outputs["verdict"] == "fail"  # the measurement is not rewritten
    assert run.outputs["regression-accepted-by"] == "lead"
    report = json.loads((workspace.builder.root / run.outputs["report-path"]).read_text())
    assert report["verdict"] == "fail"
    assert report["override"] == {
        "label": OVERRIDE_LABEL, "accepted": True, "actor": "lead", "permission": "maintain",
        "applied_at": report["override"]["applied_at"], "reason": None,
    }  # fmt: skip
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    assert "**Regression accepted** by @\u200blead (maintain access)" in comment["body"]
    assert "regression accepted by @lead" in run.log  # a ::warning:: in the job log
    client = MlflowClient(tracking_uri=f"sqlite:///{workspace.mlflow_db.as_posix()}")
    tags = client.get_run(report["mlflow"]["run_id"]).data.tags
    assert tags["promptgate.verdict"] == "fail"
    assert tags["promptgate.override.accepted"] == "true"
    assert tags["promptgate.override.actor"] == "lead"
    assert tags["promptgate.actor"] == "octocat" and tags["promptgate.pr"] == str(PR)
    assert tags["promptgate.pr_title"] == "Make the summary friendlier"


def test_the_override_label_from_someone_without_write_access_changes_nothing(
    workspace: Workspace,
) -> None:
    workspace.builder.commit({"prompts/a.txt": BAD})
    workspace.github.add_label_event(REPOSITORY, PR, OVERRIDE_LABEL, actor="author")
    workspace.github.set_permission(REPOSITORY, "author", "triage")
    run = workspace.run("pull_request", _labelled(workspace, OVERRIDE_LABEL))
    assert run.code == 1 and run.outputs["regression-accepted-by"] == ""
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    assert "was not honoured: @\u200bauthor has triage access" in comment["body"]


def test_a_pr_cannot_rename_the_override_label_to_one_it_already_has(
    workspace: Workspace,
) -> None:
    """The label's name comes from the base branch's config, like every other setting."""
    config = (workspace.builder.root / "promptgate.yaml").read_text()
    workspace.builder.commit(
        {"prompts/a.txt": BAD, "promptgate.yaml": config + "gate:\n  override_label: docs\n"}
    )
    workspace.github.add_label_event(REPOSITORY, PR, "docs", actor="lead")
    workspace.github.set_permission(REPOSITORY, "lead", "admin")
    run = workspace.run("pull_request", _labelled(workspace, "docs"))
    assert run.code == 1
    report = json.loads((workspace.builder.root / run.outputs["report-path"]).read_text())
    assert report["override"] is None and report["config_changed"]
    assert workspace.github.requests_to("/events") == []
    # The PR comment calls it out with GitHub's alert block; the job summary with a label.
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    assert "> [!WARNING]\n> This PR changes the gate config." in comment["body"]
    assert "> **Warning:** This PR changes the gate config." in run.summary
    assert "[!WARNING]" not in run.summary


def test_an_error_is_never_overridden(workspace: Workspace) -> None:
    workspace.builder.commit({"prompts/a.txt": BAD})
    workspace.github.add_label_event(REPOSITORY, PR, OVERRIDE_LABEL, actor="lead")
    workspace.github.set_permission(REPOSITORY, "lead", "admin")
    workspace.llm.fail_always = 401
    run = workspace.run("pull_request", _labelled(workspace, OVERRIDE_LABEL))
    assert run.code == 3 and run.outputs["verdict"] == "error"
    assert workspace.github.requests_to("/events") == []


# --- scale-out: a matrix of shard jobs, then one merge job -----------------------------------


def test_a_matrix_of_shards_then_a_merge_posts_one_verdict(workspace: Workspace) -> None:
    import shutil

    workspace.builder.commit({"prompts/a.txt": BAD})
    collected = workspace.tmp / "downloaded"
    for index in (1, 2):
        run = workspace.run("pull_request", workspace.pr_event(), shard=f"{index}/2")
        assert run.code == 0, run.log
        assert run.outputs == {"shard-dir": ".promptgate/shard"}
        # what upload-artifact / download-artifact do between the jobs
        shutil.move(workspace.builder.root / ".promptgate/shard", collected / f"shard-{index}")
    assert workspace.github.comments(REPOSITORY, PR) == []  # shards do not comment
    calls = workspace.llm.request_count
    workspace.llm.reset()

    shutil.move(collected, workspace.builder.root / "shards")
    run = workspace.run("pull_request", workspace.pr_event(), merge="shards/*")
    assert run.code == 1 and run.outputs["verdict"] == "fail"
    assert workspace.llm.request_count == 0
    report = json.loads((workspace.builder.root / run.outputs["report-path"]).read_text())
    assert report["calls"]["made"] == 0 and report["calls"]["cached"] == calls
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    assert "gate failed" in comment["body"]
