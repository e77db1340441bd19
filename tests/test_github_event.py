"""The Actions environment, as GitHub sets it, mapped to what the gate compares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from events import merge_group, pull_request, push, workflow_dispatch

from promptgate.errors import BadInput
from promptgate.github.event import ZERO_SHA, read_event, read_inputs

BASE, HEAD = "a" * 40, "b" * 40


def environment(
    tmp_path: Path, event: str, payload: dict[str, object], **inputs: str
) -> dict[str, str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    env = {
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_REPOSITORY": "acme/prompts",
        "GITHUB_SHA": HEAD,
        "GITHUB_ACTOR": "octocat",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "42",
    }
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    return env


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened"])
def test_a_pull_request_compares_its_base_and_head_shas(tmp_path: Path, action: str) -> None:
    env = environment(tmp_path, "pull_request", pull_request(action, 7, BASE, HEAD))
    event = read_event(env, read_inputs(env))
    assert (event.base, event.head, event.pr_number) == (BASE, HEAD, 7)
    assert event.run_url == "https://github.com/acme/prompts/actions/runs/42"


def test_inputs_keep_their_hyphens_as_github_passes_them(tmp_path: Path) -> None:
    env = {
        "INPUT_GITHUB-TOKEN": "ghs_x",
        "INPUT_FAIL-ON-REGRESSION": "false",
        "INPUT_MLFLOW-TRACKING-URI": "http://m",
    }
    inputs = read_inputs(env)
    assert inputs.github_token == "ghs_x" and inputs.fail_on_regression is False
    assert inputs.mlflow_tracking_uri == "http://m" and inputs.comment is True


def test_a_boolean_input_that_is_not_true_or_false_is_bad_input() -> None:
    with pytest.raises(BadInput) as caught:
        read_inputs({"INPUT_COMMENT": "yes please"})
    assert "comment" in caught.value.message


def test_workflow_dispatch_takes_base_and_head_from_its_inputs(tmp_path: Path) -> None:
    env = environment(
        tmp_path, "workflow_dispatch", workflow_dispatch({"base": "v1.0", "head": "v1.1"})
    )
    event = read_event(env, read_inputs(env))
    assert (event.base, event.head, event.pr_number, event.all_prompts) == (
        "v1.0",
        "v1.1",
        None,
        False,
    )


def test_workflow_dispatch_defaults_to_the_default_branch_and_may_ask_for_all(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path, "workflow_dispatch", workflow_dispatch({"all": "true"}))
    event = read_event(env, read_inputs(env))
    assert (event.base, event.head, event.all_prompts) == ("origin/main", HEAD, True)


def test_a_push_compares_before_and_after(tmp_path: Path) -> None:
    env = environment(tmp_path, "push", push(BASE, HEAD))
    event = read_event(env, read_inputs(env))
    assert (event.base, event.head) == (BASE, HEAD)


def test_a_new_branch_push_compares_with_the_default_branch(tmp_path: Path) -> None:
    env = environment(tmp_path, "push", push(ZERO_SHA, HEAD, ref="refs/heads/feature"))
    assert read_event(env, read_inputs(env)).base == "origin/main"


def test_a_first_push_of_the_default_branch_compares_with_its_parent(tmp_path: Path) -> None:
    env = environment(tmp_path, "push", push(ZERO_SHA, HEAD, ref="refs/heads/main"))
    assert read_event(env, read_inputs(env)).base == f"{HEAD}~1"


def test_a_merge_group_compares_the_queue_head_with_its_base_and_is_not_a_pull_request(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path, "merge_group", merge_group(BASE, HEAD))
    event = read_event(env, read_inputs(env))
    assert (event.base, event.head, event.pr_number) == (BASE, HEAD, None)
    assert not event.is_pull_request and not event.pushed_default_branch


@pytest.mark.parametrize("missing", ["head_sha", "base_sha"])
def test_a_merge_group_without_its_shas_is_bad_input(tmp_path: Path, missing: str) -> None:
    payload = merge_group(BASE, HEAD)
    del payload["merge_group"][missing]
    env = environment(tmp_path, "merge_group", payload)
    with pytest.raises(BadInput) as caught:
        read_event(env, read_inputs(env))
    assert "head_sha and base_sha" in caught.value.message


def test_a_push_that_deletes_its_ref_has_nothing_to_judge(tmp_path: Path) -> None:
    env = environment(tmp_path, "push", push(BASE, ZERO_SHA, ref="refs/heads/old"))
    event = read_event(env, read_inputs(env))
    assert event.nothing_to_judge is not None and "deleted refs/heads/old" in event.nothing_to_judge
    assert (event.base, event.head) == (None, None)


def test_only_a_push_that_creates_its_ref_is_marked_created(tmp_path: Path) -> None:
    created = environment(tmp_path, "push", push(ZERO_SHA, HEAD, ref="refs/heads/feature"))
    assert read_event(created, read_inputs(created)).created_ref
    updated = environment(tmp_path, "push", push(BASE, HEAD, ref="refs/heads/feature"))
    assert not read_event(updated, read_inputs(updated)).created_ref
    chosen = environment(
        tmp_path, "push", push(ZERO_SHA, HEAD, ref="refs/heads/feature"), base="v1.0"
    )
    assert not read_event(chosen, read_inputs(chosen)).created_ref  # the input decides


def test_another_event_is_bad_input_that_names_the_supported_ones(tmp_path: Path) -> None:
    env = environment(tmp_path, "issue_comment", {"action": "created"})
    with pytest.raises(BadInput) as caught:
        read_event(env, read_inputs(env))
    assert "issue_comment" in caught.value.message and "pull_request" in caught.value.message
    assert "merge_group" in caught.value.message
