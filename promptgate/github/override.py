"""The override label: a person with write access accepts a failed gate's regression, on record.

A failed gate whose PR carries the config's `gate.override_label` (the base branch's config, so
a PR cannot rename it) asks GitHub who added that label last, and what that person may do on
the repository. Write, maintain or admin: the regression is accepted; the verdict stays `fail`,
the step passes, and the comment, job summary and MLflow run say who accepted it. Anyone else,
or an answer GitHub does not give: the override is refused and said so (it fails closed).
"""

from __future__ import annotations

from promptgate.github.api import GitHubClient, GitHubError
from promptgate.report.model import Override

#: `permission` of GET /repos/{owner}/{repo}/collaborators/{username}/permission that may accept
#: (GitHub reports maintain as write there, and gives the finer role in `role_name`).
ACCEPTING_PERMISSIONS = frozenset({"admin", "write"})


def decide_override(client: GitHubClient, repository: str, pr_number: int, label: str) -> Override:
    """Whether the label on the PR accepts its regression: who added it, and their permission."""
    try:
        added = _last_added(client, repository, pr_number, label)
        if added is None:
            return Override(
                label=label,
                accepted=False,
                reason="no record of who added the label; remove it and add it again",
            )
        actor, applied_at = added
        permission, role = _permission(client, repository, actor)
    except GitHubError as exc:
        return Override(
            label=label,
            accepted=False,
            reason=f"GitHub could not say who added the label or with what permission: {exc}. "
            "The job needs `permissions: pull-requests: read` (the default token has it).",
        )
    accepted = permission in ACCEPTING_PERMISSIONS
    return Override(
        label=label,
        accepted=accepted,
        actor=actor,
        permission=role or permission,
        applied_at=applied_at,
        reason=None
        if accepted
        else f"@{actor} has {role or permission} access; accepting a regression takes write",
    )


def _last_added(
    client: GitHubClient, repository: str, pr_number: int, label: str
) -> tuple[str, str | None] | None:
    """The login and time of the last `labeled` event for `label` (events list oldest first)."""
    last = None
    for event in client.paginate(f"/repos/{repository}/issues/{pr_number}/events"):
        name = (event.get("label") or {}).get("name")
        login = (event.get("actor") or {}).get("login")
        if event.get("event") == "labeled" and name == label and isinstance(login, str):
            last = (login, event.get("created_at"))
    return last


def _permission(client: GitHubClient, repository: str, user: str) -> tuple[str, str | None]:
    answer = client.request("GET", f"/repos/{repository}/collaborators/{user}/permission").json()
    if not isinstance(answer, dict) or not isinstance(answer.get("permission"), str):
        raise GitHubError(None, f"the permission of {user} came back without a 'permission' field")
    role = answer.get("role_name")
    return answer["permission"], role if isinstance(role, str) else None
