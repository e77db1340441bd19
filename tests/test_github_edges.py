"""GitHub edges that real repositories hit (issue 10, items 7-10): merge queues, pushes that
delete a ref or start a new history, a comment POST that failed after it was stored, and the
job summary's limit in bytes. Action-level tests run entrypoint.py as GitHub runs it (see
test_action.py, whose workspace fixture they share), against real git repositories, the LLM
stub and the GitHub REST stub."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import git
import test_action
from action_run import BAD, PR, REPOSITORY, ActionRun, Workspace
from events import ZERO_SHA, merge_group, push
from gate_fixtures import config_yaml, jsonl
from github_stub import Fault
from gitrepo import RepoBuilder
from test_markdown import prompt, regression, report

from promptgate.github.workflow import append_summary
from promptgate.report.markdown import MARKER, render_markdown
from promptgate.report.model import Report

workspace = test_action.workspace  # the same fixture: a temp repo, the LLM stub, the GitHub stub

RUNNER_SUMMARY_LIMIT = 1_048_576  # actions/runner: a step's summary file over 1 MiB is dropped


def _actions_checkout(workspace: Workspace, sha: str) -> None:
    """What actions/checkout does with `fetch-depth: 0`: a clone that has every branch as
    origin/*, with the event's commit checked out."""
    clone = workspace.tmp / "checkout"
    subprocess.run(["git", "clone", "-q", workspace.builder.root.as_uri(), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "--detach", sha], check=True)
    checkout = RepoBuilder.__new__(RepoBuilder)
    checkout.root, checkout.repo = clone, git.Repo(clone)
    workspace.builder = checkout


def _report(workspace: Workspace, run: ActionRun) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (workspace.builder.root / run.outputs["report-path"]).read_text()
    )
    return data


# --- 7. merge queues ----------------------------------------------------------------------


def test_a_merge_queue_group_is_gated_like_a_pr_with_no_call_to_github(
    workspace: Workspace,
) -> None:
    repo = workspace.builder.repo
    base = repo.heads["main"].commit.hexsha
    workspace.builder.commit({"prompts/a.txt": BAD}, "a worse prompt")  # the queued PR
    workspace.builder.checkout("main")
    workspace.builder.branch(f"gh-readonly-queue/main/pr-{PR}-{base}")
    repo.git.merge("--no-ff", "pr", "-m", f"Merge pull request #{PR}")  # what the queue builds
    head = repo.head.commit.hexsha
    _actions_checkout(workspace, head)

    run = workspace.run("merge_group", merge_group(base, head))

    assert run.code == 1, run.log  # the regression is caught in the queue, too
    assert run.outputs["verdict"] == "fail" and run.outputs["comment-url"] == ""
    sides = _report(workspace, run)
    assert (sides["base"]["sha"], sides["head"]["sha"]) == (base, head)  # type: ignore[index]
    assert run.summary.startswith(MARKER)
    assert workspace.github.requests == []  # no comment, no override lookup: not one call


# --- 8. pushes: a deleted ref, a history that starts in the push ----------------------------


def test_a_push_that_deletes_a_branch_passes_with_a_notice(workspace: Workspace) -> None:
    before = workspace.builder.repo.heads["pr"].commit.hexsha

    run = workspace.run("push", push(before, ZERO_SHA, ref="refs/heads/pr"))

    assert run.code == 0, run.log
    assert "::notice title=promptgate::this push deleted refs/heads/pr" in run.log
    assert workspace.llm.request_count == 0 and workspace.github.requests == []


def test_the_first_push_of_a_new_repository_passes_with_a_notice(workspace: Workspace) -> None:
    first = workspace.builder.repo.heads["main"].commit.hexsha  # the repository's only commit
    assert not workspace.builder.repo.commit(first).parents
    _actions_checkout(workspace, first)

    run = workspace.run("push", push(ZERO_SHA, first, ref="refs/heads/main"))

    assert run.code == 0, run.log
    assert "::notice title=promptgate::" in run.log and "has no parent" in run.log
    assert workspace.llm.request_count == 0 and workspace.github.requests == []


def test_an_orphan_branch_of_several_commits_passes_with_a_notice(workspace: Workspace) -> None:
    repo = workspace.builder.repo
    repo.git.checkout("--orphan", "site")  # keeps the index: the same files, no parent
    workspace.builder.commit({"prompts/a.txt": BAD}, "a new history")
    after = workspace.builder.commit({"prompts/b.txt": BAD, "evals/b.jsonl": jsonl()}, "more")
    _actions_checkout(workspace, after)

    run = workspace.run("push", push(ZERO_SHA, after, ref="refs/heads/site"))

    assert run.code == 0, run.log
    assert "::notice title=promptgate::" in run.log and "shares no history" in run.log
    assert workspace.llm.request_count == 0


def test_a_new_branch_cut_from_the_default_branch_is_still_gated(workspace: Workspace) -> None:
    workspace.builder.checkout("main")
    workspace.builder.branch("feature")
    after = workspace.builder.commit({"prompts/a.txt": BAD})
    _actions_checkout(workspace, after)

    run = workspace.run("push", push(ZERO_SHA, after, ref="refs/heads/feature"))

    assert run.code == 1, run.log
    assert "::notice" not in run.log


# --- 9. a comment POST that failed after it was stored --------------------------------------


def test_a_comment_stored_before_github_answered_500_is_not_posted_again(
    workspace: Workspace,
) -> None:
    workspace.builder.commit({"prompts/a.txt": BAD})
    workspace.github.script(Fault.ok(), Fault.served_then(500))  # the list, then the POST

    run = workspace.run("pull_request", workspace.pr_event())

    assert run.code == 1, run.log
    (comment,) = workspace.github.comments(REPOSITORY, PR)  # one, not two
    assert comment["body"].startswith(MARKER)
    assert run.outputs["comment-url"] == comment["html_url"]
    assert [r.method for r in workspace.github.requests] == ["GET", "POST", "GET"]
    # the fixture asserts the stub saw no violation (a second POST of the same body is one)


# --- 10. the job summary's limit is in bytes ----------------------------------------------

CJK_WORD = "提示词评估结果显示回归问题需要审查"  # 17 characters, 51 bytes of UTF-8


def test_a_cjk_report_keeps_the_job_summary_under_one_mib_of_bytes(workspace: Workspace) -> None:
    texts = [" ".join(f"{CJK_WORD}{i}-{j}" for j in range(80)) for i in range(12)]
    prompts = {f"prompts/p{i:02}.txt": "{{ text }}\n" for i in range(14)}
    evals = {f"evals/p{i:02}.jsonl": jsonl(texts) for i in range(14)}
    config = config_yaml(workspace.llm, workspace.mlflow_db, extra="gate:\n  top_regressions: 12\n")
    workspace.builder.checkout("main")
    workspace.builder.commit({"promptgate.yaml": config, **prompts, **evals})
    workspace.builder.checkout("pr")
    workspace.builder.repo.git.merge("--ff-only", "main")
    workspace.builder.commit(dict.fromkeys(prompts, BAD))

    run = workspace.run("pull_request", workspace.pr_event())

    assert run.code == 1, run.log
    size = len(run.summary.encode("utf-8"))
    assert size <= RUNNER_SUMMARY_LIMIT, f"{size:,} bytes: the runner would drop the summary"
    assert size > RUNNER_SUMMARY_LIMIT // 4  # trimmed to fit (outputs shortened), not emptied
    assert run.summary.startswith(MARKER) and CJK_WORD in run.summary
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    assert len(comment["body"]) <= 65_536  # GitHub counts the comment in characters


def _cjk_report() -> Report:
    output = " ".join([CJK_WORD] * 100)
    return report(
        *[
            prompt(
                f"prompts/p{i:02d}.txt",
                verdict="fail",
                regressions=[regression(f"ex-{j}", output, output[::-1]) for j in range(10)],
            )
            for i in range(10)
        ]
    )


def test_render_markdown_counts_utf8_bytes_when_asked() -> None:
    cjk = _cjk_report()
    in_chars = render_markdown(cjk, max_chars=200_000)
    in_bytes = render_markdown(cjk, max_bytes=200_000)
    assert len(in_chars) <= 200_000 < len(in_chars.encode("utf-8"))  # characters are not bytes
    assert len(in_bytes.encode("utf-8")) <= 200_000
    assert in_bytes.startswith(MARKER) and CJK_WORD in in_bytes
    tiny = render_markdown(cjk, max_bytes=100)
    assert len(tiny.encode("utf-8")) <= 100  # cut on a character, never inside one


def test_the_summary_counts_what_the_step_appended_before(tmp_path: Path) -> None:
    summary = tmp_path / "step_summary"
    summary.write_bytes(b"### Prompt Registry\n" + b"x" * 1_000_000)
    rooms: list[int] = []

    def render(room: int) -> str:
        rooms.append(room)
        return "字" * (room // 3)

    assert append_summary(summary, render, max_bytes=RUNNER_SUMMARY_LIMIT)
    assert rooms == [RUNNER_SUMMARY_LIMIT - 1_000_020]
    assert summary.stat().st_size <= RUNNER_SUMMARY_LIMIT
    assert summary.read_bytes().startswith(b"### Prompt Registry\n")

    before = summary.read_bytes()
    assert not append_summary(summary, "字" * 20_000, max_bytes=RUNNER_SUMMARY_LIMIT)
    assert summary.read_bytes() == before  # refused whole: a partial write would be dropped too
