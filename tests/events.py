"""Event payloads shaped as GitHub sends them (trimmed to the fields GitHub always includes)."""

from __future__ import annotations

from typing import Any

REPOSITORY = {
    "full_name": "acme/prompts",
    "name": "prompts",
    "default_branch": "main",
    "owner": {"login": "acme"},
}
SENDER = {"login": "octocat", "type": "User"}
ZERO_SHA = "0" * 40


def pull_request(action: str, number: int, base_sha: str, head_sha: str) -> dict[str, Any]:
    pull = {
        "number": number,
        "state": "open",
        "title": "Make the summary friendlier",
        "user": SENDER,
        "base": {"ref": "main", "sha": base_sha, "repo": REPOSITORY},
        "head": {"ref": "friendlier", "sha": head_sha, "repo": REPOSITORY},
    }
    payload: dict[str, Any] = {
        "action": action,
        "number": number,
        "pull_request": pull,
        "repository": REPOSITORY,
        "sender": SENDER,
    }
    if action == "synchronize":
        payload["before"], payload["after"] = base_sha, head_sha
    return payload


def workflow_dispatch(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputs": inputs,
        "ref": "refs/heads/main",
        "repository": REPOSITORY,
        "sender": SENDER,
        "workflow": ".github/workflows/promptgate.yml",
    }


def push(before: str, after: str, ref: str = "refs/heads/main") -> dict[str, Any]:
    """A push; `after` all zeros is GitHub's payload for a deleted ref (no head commit)."""
    deleted = after == ZERO_SHA
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "base_ref": None,
        "created": before == ZERO_SHA,
        "deleted": deleted,
        "forced": False,
        "compare": f"https://github.com/acme/prompts/compare/{before[:12]}...{after[:12]}",
        "commits": [],
        "head_commit": None if deleted else {"id": after},
        "repository": REPOSITORY,
        "pusher": {"name": "octocat"},
        "sender": SENDER,
    }


def merge_group(base_sha: str, head_sha: str, pr_number: int = 7) -> dict[str, Any]:
    """`merge_group` `checks_requested`, shaped as octokit/webhooks' schema requires
    (payload-schemas/api.github.com/merge_group/checks_requested.schema.json)."""
    person = {"name": "Octo Cat", "email": "octocat@github.com"}
    return {
        "action": "checks_requested",
        "merge_group": {
            "head_sha": head_sha,
            "head_ref": f"refs/heads/gh-readonly-queue/main/pr-{pr_number}-{base_sha}",
            "base_sha": base_sha,
            "base_ref": "refs/heads/main",
            "head_commit": {
                "id": head_sha,
                "tree_id": "f" * 40,
                "message": f"Merge pull request #{pr_number} from acme/friendlier",
                "timestamp": "2026-12-01T12:00:00Z",
                "author": person,
                "committer": person,
            },
        },
        "repository": REPOSITORY,
        "sender": SENDER,
    }
