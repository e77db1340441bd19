"""The one sticky comment per pull request: found by its hidden marker, updated in place.

A comment is ours when its body starts with `MARKER` and a bot wrote it (`github-actions[bot]`,
or a GitHub App's bot when the action runs with an App token). A person's comment that quotes
the report, marker and all, is never edited.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from promptgate.github.api import GitHubClient, GitHubError
from promptgate.report.markdown import MARKER

# GitHub refuses longer comment bodies with 422 "body is too long (maximum is 65536 characters)".
# It counts characters (code points), not UTF-16 units: 65,536 four-byte emoji are accepted.
MAX_COMMENT_CHARS = 65_536
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_WHAT_TO_DO = (
    "Give the job `permissions: pull-requests: write`. On a pull request from a fork the token "
    "is read-only whatever the workflow asks, so no comment can be posted there; the job summary "
    "still has the report."
)


class CommentNotPosted(GitHubError):
    """GitHub refused to let this token read or write the PR's comments (a fork PR's read-only
    token, a workflow without `pull-requests: write`). A warning for the caller, not a failure."""


class CommentResult(BaseModel):
    """What `upsert_comment` did; `url` becomes the action's `comment-url` output."""

    model_config = ConfigDict(frozen=True)
    action: Literal["created", "updated"]
    id: int
    url: str  # the comment's html_url


class _User(BaseModel):
    login: str = ""
    type: str = ""


class IssueComment(BaseModel):
    """The fields of GitHub's issue comment that we use; the rest is ignored."""

    id: int
    html_url: str
    body: str | None = None
    user: _User | None = None  # None for a deleted account ("ghost")

    def is_ours(self) -> bool:
        return (
            self.user is not None
            and self.user.type == "Bot"
            and self.body is not None
            and self.body.startswith(MARKER)
        )


def upsert_comment(
    client: GitHubClient, repository: str, pr_number: int, body: str
) -> CommentResult:
    """Update our comment on `repository`#`pr_number` with `body`, or create it.

    When more than one of ours exists (two runs raced), the newest is updated and the others
    are left as they are. Raises ValueError for a bad argument before any request,
    CommentNotPosted when the token may not comment, GitHubError for anything else.
    """
    _check_arguments(repository, pr_number, body)
    ours = find_comment(client, repository, pr_number)
    if ours is not None:
        path = f"/repos/{repository}/issues/comments/{ours.id}"
        try:
            updated = _write(client, "PATCH", path, body, repository, pr_number)
            return CommentResult(action="updated", id=updated.id, url=updated.html_url)
        except CommentNotPosted as error:
            if error.status != 404:
                raise
            # Deleted since we listed it; if the token may not write, the POST says so too.
    return _create(client, repository, pr_number, body)


def _create(client: GitHubClient, repository: str, pr_number: int, body: str) -> CommentResult:
    """POST the comment. A POST is never sent again blind: after one that may have been stored
    (a 5xx answer, or an answer lost after sending), the comments are listed again, and a comment
    of ours found there is the one to keep (brought up to date if another run raced us)."""
    path = f"/repos/{repository}/issues/{pr_number}/comments"
    attempts = client.max_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            created = _write(client, "POST", path, body, repository, pr_number)
            return CommentResult(action="created", id=created.id, url=created.html_url)
        except GitHubError as error:
            if not error.maybe_applied or attempt == attempts:
                raise
            client.back_off(attempt, f"{error}; looking for the comment before posting again")
        stored = find_comment(client, repository, pr_number)
        if stored is not None:
            if stored.body == body:
                return CommentResult(action="created", id=stored.id, url=stored.html_url)
            comment_path = f"/repos/{repository}/issues/comments/{stored.id}"
            updated = _write(client, "PATCH", comment_path, body, repository, pr_number)
            return CommentResult(action="updated", id=updated.id, url=updated.html_url)
    raise AssertionError("unreachable: the last attempt returns or raises")


def find_comment(client: GitHubClient, repository: str, pr_number: int) -> IssueComment | None:
    """Our newest comment on the PR, or None. Reads every page: a busy PR has hundreds."""
    path = f"/repos/{repository}/issues/{pr_number}/comments"
    newest: IssueComment | None = None
    try:
        for item in client.paginate(path):
            comment = _parse(item, f"GET {path}")
            if comment.is_ours() and (newest is None or comment.id > newest.id):
                newest = comment  # ids grow with time
    except GitHubError as error:
        if error.status in (403, 404) and not error.rate_limited:
            raise CommentNotPosted(
                error.status,
                f"could not read the comments of {repository}#{pr_number} ({error.message}). "
                "Check the repository and PR number, and give the job "
                "`permissions: pull-requests: write`.",
            ) from None
        raise
    return newest


def _write(
    client: GitHubClient, method: str, path: str, body: str, repository: str, pr_number: int
) -> IssueComment:
    try:
        response = client.request(method, path, json={"body": body})
    except GitHubError as error:
        if error.status in (403, 404) and not error.rate_limited:
            raise CommentNotPosted(
                error.status,
                f"could not post the promptgate comment on {repository}#{pr_number} "
                f"({error.message}). {_WHAT_TO_DO}",
            ) from None
        raise
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return _parse(payload, f"{method} {path}")


def _parse(payload: object, call: str) -> IssueComment:
    try:
        return IssueComment.model_validate(payload)
    except ValidationError:
        raise GitHubError(
            None, f"GitHub API {call} answered with something that is not an issue comment"
        ) from None


def _check_arguments(repository: str, pr_number: int, body: str) -> None:
    if not _REPOSITORY.fullmatch(repository) or any(
        part in (".", "..") for part in repository.split("/")
    ):
        raise ValueError(f"repository {repository!r} must look like owner/name")
    if isinstance(pr_number, bool) or not isinstance(pr_number, int) or pr_number < 1:
        raise ValueError(f"pull request number {pr_number!r} must be a positive integer")
    if not body.startswith(MARKER):
        raise ValueError(
            "the comment body must start with the promptgate marker, or the next run cannot "
            "find the comment to update it"
        )
    if len(body) > MAX_COMMENT_CHARS:
        raise ValueError(
            f"the comment body has {len(body):,} characters, more than GitHub's limit of "
            f"{MAX_COMMENT_CHARS:,}; render it with a smaller max_chars"
        )
