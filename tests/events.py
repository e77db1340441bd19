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
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "created": before == "0" * 40,
        "deleted": False,
        "forced": False,
        "commits": [],
        "head_commit": {"id": after},
        "repository": REPOSITORY,
        "pusher": {"name": "octocat"},
        "sender": SENDER,
    }
