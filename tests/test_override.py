"""The override label: who added it, with what permission, decides whether a regression is
accepted. Over real HTTP to the GitHub stub, which checks every request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from github_stub import Fault, GitHubStub

from promptgate.github.api import GitHubClient
from promptgate.github.override import decide_override
from promptgate.report.markdown import render_markdown
from promptgate.report.model import GitSide, Override, Report

REPO = "octo-org/prompts"
PR = 42
LABEL = "promptgate: accept-regression"


@pytest.fixture
def client(github_stub: GitHubStub) -> Iterator[GitHubClient]:
    with GitHubClient(github_stub.token, github_stub.api_url, timeout_s=2.0, max_retries=0) as c:
        yield c


@pytest.mark.parametrize(("role", "accepted"), [
    ("admin", True), ("maintain", True), ("write", True),
    ("triage", False), ("read", False), ("none", False),
])  # fmt: skip
def test_only_write_access_or_above_accepts_a_regression(
    github_stub: GitHubStub, client: GitHubClient, role: str, accepted: bool
) -> None:
    github_stub.add_label_event(REPO, PR, LABEL, actor="lead")
    github_stub.set_permission(REPO, "lead", role)
    override = decide_override(client, REPO, PR, LABEL)
    assert override.accepted is accepted
    assert override.actor == "lead" and override.permission == role
    assert override.applied_at is not None
    if not accepted:
        assert override.reason == f"@lead has {role} access; accepting a regression takes write"
    assert github_stub.violations == []


def test_the_person_who_added_the_label_last_is_the_one_who_counts(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    github_stub.set_permission(REPO, "lead", "write")
    github_stub.set_permission(REPO, "author", "read")
    github_stub.add_label_event(REPO, PR, LABEL, actor="lead")
    github_stub.add_label_event(REPO, PR, "unrelated", actor="lead")
    github_stub.add_label_event(REPO, PR, LABEL, actor="lead", removed=True)
    github_stub.add_label_event(REPO, PR, LABEL, actor="author")
    override = decide_override(client, REPO, PR, LABEL)
    assert not override.accepted and override.actor == "author"


def test_a_label_nobody_is_recorded_adding_is_refused(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    github_stub.add_label_event(REPO, PR, "another label", actor="lead")
    override = decide_override(client, REPO, PR, LABEL)
    assert not override.accepted and override.actor is None
    assert "no record of who added the label" in (override.reason or "")


def test_when_github_cannot_say_who_added_it_the_override_fails_closed(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    github_stub.add_label_event(REPO, PR, LABEL, actor="lead")
    github_stub.set_permission(REPO, "lead", "admin")
    github_stub.script(Fault.http_error(403, "Resource not accessible by integration"))
    override = decide_override(client, REPO, PR, LABEL)
    assert not override.accepted
    assert "Resource not accessible by integration" in (override.reason or "")


def _failed(override: Override) -> Report:
    return Report(
        verdict="fail",
        base=GitSide(ref="main", sha="a" * 40),
        head=GitSide(ref="pr", sha="b" * 40),
        override=override,
    )


def test_the_comment_says_who_accepted_the_regression_and_that_the_verdict_stays() -> None:
    accepted = Override(
        label=LABEL, accepted=True, actor="lead", permission="maintain", applied_at="2026-01-02"
    )
    text = render_markdown(_failed(accepted))
    assert "gate failed · regression accepted" in text
    assert "**Regression accepted** by @\u200blead (maintain access)" in text
    assert "The verdict stays *fail*" in text


def test_the_comment_says_why_a_label_was_not_honoured() -> None:
    refused = Override(label=LABEL, accepted=False, actor="author", reason="@author has read")
    text = render_markdown(_failed(refused))
    assert "regression accepted" not in text
    assert "was not honoured: @\u200bauthor has read" in text
