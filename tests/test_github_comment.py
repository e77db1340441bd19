"""The sticky PR comment, over real HTTP to a GitHub stub that checks requests like GitHub."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Literal

import httpx
import pytest
from github_stub import BOT, HUMAN, Fault, GitHubStub, RecordedRequest

from promptgate.github.api import MESSAGE_CHARS, GitHubClient, GitHubError
from promptgate.github.comment import (
    MAX_COMMENT_CHARS,
    CommentNotPosted,
    CommentResult,
    upsert_comment,
)
from promptgate.report.markdown import MARKER

REPO = "octo-org/prompts"
PR = 42
BACKOFF_S = 0.01


def report(text: str) -> str:
    return f"{MARKER}\n## ✅ promptgate: gate passed\n\n{text}\n"


@pytest.fixture
def waits() -> list[float]:
    """The client's waits, recorded instead of slept: fast tests that can assert on them."""
    return []


@pytest.fixture
def client(github_stub: GitHubStub, waits: list[float]) -> Iterator[GitHubClient]:
    with GitHubClient(
        github_stub.token,
        github_stub.api_url,
        timeout_s=2.0,
        backoff_base_s=BACKOFF_S,
        sleep=waits.append,
    ) as github:
        yield github


# -- create and update ------------------------------------------------------------------


def test_the_first_run_creates_the_comment(github_stub: GitHubStub, client: GitHubClient) -> None:
    result = upsert_comment(client, REPO, PR, report("first run"))

    [comment] = github_stub.comments(REPO, PR)
    assert result == CommentResult(action="created", id=comment["id"], url=comment["html_url"])
    assert result.url == f"https://github.com/{REPO}/pull/{PR}#issuecomment-{result.id}"
    assert comment["body"] == report("first run")
    assert comment["user"] == BOT
    headers = github_stub.requests[0].headers
    assert headers["user-agent"].startswith("promptgate/")
    assert headers["x-github-api-version"] == "2022-11-28"
    assert github_stub.violations == []


def test_a_second_run_updates_the_same_comment(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    first = upsert_comment(client, REPO, PR, report("first run"))
    github_stub.reset_requests()

    second = upsert_comment(client, REPO, PR, report("second run"))

    assert (second.action, second.id, second.url) == ("updated", first.id, first.url)
    [comment] = github_stub.comments(REPO, PR)
    assert comment["body"] == report("second run")
    assert [(r.method, r.path) for r in github_stub.writes] == [
        ("PATCH", f"/repos/{REPO}/issues/comments/{first.id}")
    ]
    assert github_stub.violations == []


def test_comments_on_other_pull_requests_are_not_touched(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    other = upsert_comment(client, REPO, 7, report("PR 7"))

    mine = upsert_comment(client, REPO, PR, report("PR 42"))

    assert mine.action == "created" and mine.id != other.id
    assert github_stub.comments(REPO, 7)[0]["body"] == report("PR 7")
    assert github_stub.violations == []


def test_a_persons_comment_with_the_marker_is_left_alone(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    quoted = github_stub.add_comment(REPO, PR, report("copied from the bot"), user=HUMAN)
    mentioned = github_stub.add_comment(REPO, PR, f"why does it say {MARKER}?", user=HUMAN)
    bot_quoting = github_stub.add_comment(REPO, PR, f"> {MARKER}\n> quoted", user=BOT)

    created = upsert_comment(client, REPO, PR, report("first run"))
    updated = upsert_comment(client, REPO, PR, report("second run"))

    assert created.action == "created"
    assert (updated.action, updated.id) == ("updated", created.id)
    bodies = {c["id"]: c["body"] for c in github_stub.comments(REPO, PR)}
    assert bodies == {
        quoted["id"]: quoted["body"],
        mentioned["id"]: mentioned["body"],
        bot_quoting["id"]: bot_quoting["body"],
        created.id: report("second run"),
    }
    assert github_stub.violations == []  # would list any edit of a person's comment


def test_our_comment_on_page_three_of_250_is_found_and_updated(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    ours_at = 230
    for number in range(250):
        if number == ours_at:
            ours = github_stub.add_comment(REPO, PR, report("old run"), user=BOT)
        else:
            github_stub.add_comment(REPO, PR, f"comment {number}", user=HUMAN)

    result = upsert_comment(client, REPO, PR, report("new run"))

    assert (result.action, result.id) == ("updated", ours["id"])
    comments = github_stub.comments(REPO, PR)
    assert len(comments) == 250
    assert comments[ours_at]["body"] == report("new run")
    reads = [r for r in github_stub.requests if r.method == "GET"]
    assert [r.query.get("page", "1") for r in reads] == ["1", "2", "3"]
    assert all(r.query["per_page"] == "100" for r in reads)
    # The next links are followed as GitHub gives them (/repositories/{id}/...), not rebuilt.
    assert all(r.path.startswith("/repositories/") for r in reads[1:])
    assert github_stub.violations == []


def test_after_a_race_the_newest_of_our_comments_is_updated(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    older = github_stub.add_comment(REPO, PR, report("run A"), user=BOT)
    newer = github_stub.add_comment(REPO, PR, report("run B"), user=BOT)

    result = upsert_comment(client, REPO, PR, report("run C"))

    assert (result.action, result.id) == ("updated", newer["id"])
    bodies = {c["id"]: c["body"] for c in github_stub.comments(REPO, PR)}
    assert bodies == {older["id"]: report("run A"), newer["id"]: report("run C")}


def test_a_comment_deleted_between_listing_and_editing_is_created_again(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    ours = github_stub.add_comment(REPO, PR, report("old run"), user=BOT)

    def delete_before_the_edit(request: RecordedRequest) -> None:
        if request.method == "PATCH":
            github_stub.delete_comment(ours["id"])

    github_stub.on_request = delete_before_the_edit
    result = upsert_comment(client, REPO, PR, report("new run"))

    assert result.action == "created" and result.id != ours["id"]
    assert [c["body"] for c in github_stub.comments(REPO, PR)] == [report("new run")]
    assert github_stub.violations == []


# -- a token that may not write -----------------------------------------------------------


def test_a_read_only_token_raises_comment_not_posted_and_creates_nothing(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    github_stub.read_only = True

    with pytest.raises(CommentNotPosted) as raised:
        upsert_comment(client, REPO, PR, report("fork PR"))

    assert raised.value.status == 403
    message = str(raised.value)
    assert "Resource not accessible by integration" in message
    assert "pull-requests: write" in message
    assert "job summary" in message
    assert github_stub.comments(REPO, PR) == []
    assert isinstance(raised.value, GitHubError)


def test_a_read_only_token_leaves_the_existing_comment_as_it_was(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    ours = github_stub.add_comment(REPO, PR, report("old run"), user=BOT)
    github_stub.read_only = True

    with pytest.raises(CommentNotPosted):
        upsert_comment(client, REPO, PR, report("new run"))

    assert github_stub.comments(REPO, PR) == [ours]
    # One refused edit; no create attempted after a 403.
    assert [r.method for r in github_stub.writes] == ["PATCH"]


# -- retries ------------------------------------------------------------------------------


def test_transient_502_and_429_are_retried_and_succeed(
    github_stub: GitHubStub, client: GitHubClient, waits: list[float]
) -> None:
    github_stub.script(Fault.http_error(502), Fault.rate_limited(retry_after="1"))

    result = upsert_comment(client, REPO, PR, report("first run"))

    assert result.action == "created"
    assert waits == [BACKOFF_S, 1.0]  # backoff after the 502, Retry-After after the 429
    assert len(github_stub.comments(REPO, PR)) == 1
    assert github_stub.violations == []


def test_a_502_on_the_post_looks_for_the_comment_then_posts_again(
    github_stub: GitHubStub, client: GitHubClient, waits: list[float]
) -> None:
    github_stub.script(Fault.ok(), Fault.http_error(502, "Server Error"))  # list fine, POST 502

    result = upsert_comment(client, REPO, PR, report("first run"))

    assert result.action == "created"
    assert [r.method for r in github_stub.requests] == ["GET", "POST", "GET", "POST"]
    assert len(github_stub.comments(REPO, PR)) == 1
    assert waits == [BACKOFF_S]
    assert github_stub.violations == []


@pytest.mark.parametrize("answer", [500, 502, 503, "disconnect"])
def test_a_post_stored_before_it_failed_is_found_and_not_posted_again(
    github_stub: GitHubStub, client: GitHubClient, answer: int | Literal["disconnect"]
) -> None:
    github_stub.script(Fault.ok(), Fault.served_then(answer))  # stored, then 5xx or no answer

    result = upsert_comment(client, REPO, PR, report("first run"))

    [comment] = github_stub.comments(REPO, PR)
    assert (result.action, result.id, result.url) == ("created", comment["id"], comment["html_url"])
    assert [r.method for r in github_stub.requests] == ["GET", "POST", "GET"]
    assert github_stub.violations == []  # would list a second POST of the same body


def test_a_comment_a_racing_run_stored_meanwhile_is_updated_not_doubled(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    github_stub.script(Fault.ok(), Fault.http_error(500))  # our POST fails, not stored
    racing: list[dict[str, object]] = []

    def another_run_posts(request: RecordedRequest) -> None:
        if request.method == "GET" and github_stub.writes and not racing:
            racing.append(github_stub.add_comment(REPO, PR, report("other run"), user=BOT))

    github_stub.on_request = another_run_posts
    result = upsert_comment(client, REPO, PR, report("this run"))

    assert (result.action, result.id) == ("updated", racing[0]["id"])
    assert [c["body"] for c in github_stub.comments(REPO, PR)] == [report("this run")]
    assert [r.method for r in github_stub.writes] == ["POST", "PATCH"]


def test_a_post_answered_5xx_is_not_repeated_by_the_client(
    github_stub: GitHubStub, client: GitHubClient, waits: list[float]
) -> None:
    github_stub.script(Fault.http_error(503))

    with pytest.raises(GitHubError) as raised:
        client.request("POST", f"/repos/{REPO}/issues/{PR}/comments", json={"body": "x"})

    assert raised.value.status == 503 and raised.value.maybe_applied
    assert "not sent again blind" in str(raised.value)
    assert len(github_stub.requests) == 1 and waits == []


def test_a_patch_answered_5xx_is_retried(
    github_stub: GitHubStub, client: GitHubClient, waits: list[float]
) -> None:
    ours = github_stub.add_comment(REPO, PR, report("old run"), user=BOT)
    github_stub.script(Fault.ok(), Fault.http_error(502))  # list fine, first PATCH 502

    result = upsert_comment(client, REPO, PR, report("new run"))

    assert (result.action, result.id) == ("updated", ours["id"])
    assert [r.method for r in github_stub.writes] == ["PATCH", "PATCH"]
    assert waits == [BACKOFF_S]


def test_the_secondary_rate_limit_waits_as_long_as_github_asks(
    github_stub: GitHubStub, client: GitHubClient, waits: list[float]
) -> None:
    github_stub.script(Fault.secondary_rate_limit(retry_after="3"))

    result = upsert_comment(client, REPO, PR, report("first run"))

    assert result.action == "created"
    assert waits == [3.0]


def test_a_primary_rate_limit_far_from_reset_fails_at_once_and_is_not_a_permission_problem(
    github_stub: GitHubStub, client: GitHubClient, waits: list[float]
) -> None:
    github_stub.script(Fault.primary_rate_limit(reset_in_s=1800))

    with pytest.raises(GitHubError) as raised:
        upsert_comment(client, REPO, PR, report("first run"))

    assert not isinstance(raised.value, CommentNotPosted)
    assert raised.value.rate_limited and raised.value.status == 403
    assert "rate limit" in str(raised.value)
    assert waits == []
    assert len(github_stub.requests) == 1


def test_a_primary_rate_limit_close_to_reset_is_waited_out(
    github_stub: GitHubStub, client: GitHubClient, waits: list[float]
) -> None:
    github_stub.script(Fault.primary_rate_limit(reset_in_s=5))

    assert upsert_comment(client, REPO, PR, report("first run")).action == "created"
    [wait] = waits
    assert 3 <= wait <= 6


def test_dropped_connections_and_timeouts_are_retried(github_stub: GitHubStub) -> None:
    github_stub.script(Fault.disconnect(), Fault.hang(2.0))
    waits: list[float] = []
    with GitHubClient(
        github_stub.token, github_stub.api_url, timeout_s=0.2, backoff_base_s=0, sleep=waits.append
    ) as client:
        result = upsert_comment(client, REPO, PR, report("first run"))

    assert result.action == "created"
    assert len(waits) == 2
    assert len(github_stub.comments(REPO, PR)) == 1


def test_a_post_that_timed_out_is_looked_for_before_it_is_sent_again(
    github_stub: GitHubStub,
) -> None:
    github_stub.script(Fault.ok(), Fault.hang(2.0))  # the list answers, the POST times out
    with GitHubClient(
        github_stub.token, github_stub.api_url, timeout_s=0.2, sleep=lambda _: None
    ) as client:
        result = upsert_comment(client, REPO, PR, report("first run"))

    assert result.action == "created"
    assert [r.method for r in github_stub.requests] == ["GET", "POST", "GET", "POST"]
    assert len(github_stub.comments(REPO, PR)) == 1


def test_posts_that_keep_failing_give_up_after_max_retries(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    github_stub.script(Fault.ok(), *[Fault.http_error(502), Fault.ok()] * 4)

    with pytest.raises(GitHubError) as raised:
        upsert_comment(client, REPO, PR, report("first run"))

    assert raised.value.status == 502 and raised.value.maybe_applied
    assert [r.method for r in github_stub.writes] == ["POST"] * 4  # max_retries 3, plus one
    assert github_stub.comments(REPO, PR) == []


def test_retries_stop_after_max_retries(
    github_stub: GitHubStub, client: GitHubClient, waits: list[float]
) -> None:
    github_stub.script(*[Fault.http_error(502)] * 4)

    with pytest.raises(GitHubError) as raised:
        upsert_comment(client, REPO, PR, report("first run"))

    assert raised.value.status == 502
    assert "after 4 attempts" in str(raised.value)
    assert waits == [BACKOFF_S, 2 * BACKOFF_S, 4 * BACKOFF_S]
    assert len(github_stub.requests) == 4
    assert github_stub.writes == []


# -- refused before any request -----------------------------------------------------------


def test_an_over_long_body_is_refused_before_any_request(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    body = report("x" * MAX_COMMENT_CHARS)

    with pytest.raises(ValueError, match="65,536"):
        upsert_comment(client, REPO, PR, body)

    assert github_stub.requests == []


def test_a_body_of_exactly_the_limit_is_posted(
    github_stub: GitHubStub, client: GitHubClient
) -> None:
    body = MARKER + "x" * (MAX_COMMENT_CHARS - len(MARKER))

    assert upsert_comment(client, REPO, PR, body).action == "created"
    assert github_stub.comments(REPO, PR)[0]["body"] == body
    assert github_stub.violations == []


@pytest.mark.parametrize(
    ("repository", "pr_number", "body", "complaint"),
    [
        (REPO, PR, "## promptgate\n" + MARKER, "marker"),
        ("prompts", PR, report("x"), "owner/name"),
        ("octo-org/prompts/issues", PR, report("x"), "owner/name"),
        ("../prompts", PR, report("x"), "owner/name"),
        ("octo-org/..", PR, report("x"), "owner/name"),
        (REPO, 0, report("x"), "positive integer"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(
    github_stub: GitHubStub,
    client: GitHubClient,
    repository: str,
    pr_number: int,
    body: str,
    complaint: str,
) -> None:
    with pytest.raises(ValueError, match=complaint):
        upsert_comment(client, repository, pr_number, body)

    assert github_stub.requests == []


# -- the token ----------------------------------------------------------------------------


def test_a_wrong_token_is_reported_without_the_token(github_stub: GitHubStub) -> None:
    wrong = "ghp_WrongToken0123456789abcdefghijklmn"
    with GitHubClient(wrong, github_stub.api_url) as client, pytest.raises(GitHubError) as raised:
        upsert_comment(client, REPO, PR, report("first run"))

    assert raised.value.status == 401
    assert "Bad credentials" in str(raised.value) and "github-token" in str(raised.value)
    assert not isinstance(raised.value, CommentNotPosted)
    assert wrong not in str(raised.value) and wrong not in repr(raised.value)


def test_the_token_never_appears_in_errors_repr_or_logs(
    github_stub: GitHubStub,
    client: GitHubClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = github_stub.token
    # Servers sometimes quote what they were sent; one message puts the token where
    # truncation would cut it, so masking must come first.
    github_stub.script(
        Fault.http_error(502, f"upstream rejected {token}"),
        Fault.http_error(422, "x" * (MESSAGE_CHARS - 20) + token),
    )
    caplog.set_level(logging.DEBUG)

    with pytest.raises(GitHubError) as raised:
        upsert_comment(client, REPO, PR, report("first run"))

    assert raised.value.status == 422
    shown = [str(raised.value), repr(raised.value), repr(client), caplog.text]
    assert "upstream rejected ***" in caplog.text  # the retry was logged, masked
    for text in shown:
        assert token not in text
        assert token[:12] not in text


def test_a_malformed_token_is_refused_without_echoing_it() -> None:
    token = "ghp_secret\nInjected: header"
    with pytest.raises(ValueError) as raised:
        GitHubClient(token)

    assert "secret" not in str(raised.value)


def test_a_next_link_to_another_server_is_not_followed(client: GitHubClient) -> None:
    with pytest.raises(GitHubError, match="refusing to send the GitHub token"):
        client.request("GET", "https://evil.example/repos/x/y/issues/1/comments?page=2")


# -- GitHub Enterprise Server ---------------------------------------------------------------


def test_a_ghes_api_url_with_a_path_prefix_works() -> None:
    with GitHubStub(prefix="/api/v3") as ghes:
        for number in range(150):
            ghes.add_comment(REPO, PR, f"comment {number}")
        with GitHubClient(ghes.token, ghes.api_url, backoff_base_s=0) as client:
            created = upsert_comment(client, REPO, PR, report("first run"))
            updated = upsert_comment(client, REPO, PR, report("second run"))

        assert ghes.api_url.endswith("/api/v3")
        assert (created.action, updated.action, updated.id) == ("created", "updated", created.id)
        assert all(r.path.startswith("/api/v3/") for r in ghes.requests)
        assert len([r for r in ghes.requests if r.method == "GET"]) == 4  # two pages, twice
        assert ghes.violations == []


# -- the stub itself: its checks are what make "no violations" mean something ------------------


def test_the_stub_refuses_what_github_refuses(github_stub: GitHubStub) -> None:
    url = f"{github_stub.api_url}/repos/{REPO}/issues/{PR}/comments"
    good = {
        "Authorization": f"Bearer {github_stub.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "test",
    }
    no_auth = {k: v for k, v in good.items() if k != "Authorization"}
    with httpx.Client(timeout=5) as http:
        assert http.get(url, headers=no_auth).status_code == 401
        assert http.get(url, headers={**good, "Accept": "text/html"}).status_code == 415
        assert http.post(url, headers=good, content=b"body=x").status_code == 422
        assert http.post(url, headers=good, json={"body": 7}).status_code == 422
        too_long = http.post(url, headers=good, json={"body": "x" * (MAX_COMMENT_CHARS + 1)})
        assert (
            http.get(f"{github_stub.api_url}/repos/{REPO}/pulls", headers=good).status_code == 404
        )
        assert http.put(url, headers=good, json={"body": "x"}).status_code == 404

    assert too_long.status_code == 422
    assert "body is too long (maximum is 65536 characters)" in too_long.text
    assert len(github_stub.violations) == 7
    assert github_stub.comments(REPO, PR) == []
