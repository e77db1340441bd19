"""action.yml, the Dockerfile and the workflows are what DESIGN.md and the README promise."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.y*ml"))
EXAMPLE = ROOT / ".github/examples/promptgate.yml"
STARTER = ROOT / "promptgate/starter/workflow.yml"
# The one finding a copied workflow may carry: the user's own choice of how to pin promptgate
# (a moving major tag), allowed in place by an inline `# zizmor: ignore[unpinned-uses]`.
ALLOWED_PIN = "promptgate/promptgate@"


def dev_tool(name: str) -> str:
    """A dev-extras binary: pip installs it beside this interpreter, which may not be on PATH."""
    scripts = sysconfig.get_path("scripts")
    found = shutil.which(name, path=os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    assert found, f"{name} comes with the dev extras (scripts/install.sh dev)"
    return found


def test_the_dockerfile_lints_clean_with_hadolint() -> None:
    hadolint = dev_tool("hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _stages(dockerfile: str) -> list[str]:
    """The Dockerfile's build stages, each from its FROM line on."""
    return re.split(r"^(?=FROM )", dockerfile, flags=re.M)[1:]


def test_the_image_exports_the_model_in_a_build_stage_and_runs_without_torch() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", dockerfile, re.M)
    export, final = _stages(dockerfile)
    assert export.startswith("FROM --platform=${BUILDPLATFORM} ${BASE_IMAGE} AS export")
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in export
    assert "scripts/install.sh export" in export
    assert final.startswith("FROM ${BASE_IMAGE}\n")
    # the same install path as the README and CI, without the exporter: no torch in the image
    assert "scripts/install.sh runtime" in final and "TORCH_INDEX_URL" not in final
    assert "COPY --from=export /opt/promptgate/models /opt/promptgate/models" in final
    assert "HF_HUB_OFFLINE=1" in final and "PROMPTGATE_MODEL_CACHE=/opt/promptgate/models" in final
    assert re.search(r'^ENTRYPOINT \["python", "/opt/promptgate/entrypoint\.py"\]$', final, re.M)
    assert "scripts/install.sh" in (ROOT / "Makefile").read_text()


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
    assert example == STARTER.read_text()
    workflow = yaml.safe_load(example)
    assert workflow["permissions"] == {}
    assert workflow["jobs"]["gate"]["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "models": "read",
    }
    checkout = workflow["jobs"]["gate"]["steps"][0]
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}


def test_the_self_test_workflow_runs_this_action_on_an_offline_fixture() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/self-test.yml").read_text())
    gate = next(step for step in workflow["jobs"]["gate"]["steps"] if step.get("uses") == "$/")
    config = yaml.safe_load((ROOT / gate["with"]["config"]).read_text())
    assert config["provider"]["kind"] == "offline"


def test_the_example_workflow_keeps_the_cache_even_when_the_gate_fails() -> None:
    """Plain actions/cache saves only on success; a failed gate's answers matter most."""
    workflow = yaml.safe_load((ROOT / ".github/examples/promptgate.yml").read_text())
    steps = workflow["jobs"]["gate"]["steps"]
    uses = [step.get("uses", "").partition("@")[0] for step in steps]
    restore = uses.index("actions/cache/restore")
    gate = uses.index("promptgate/promptgate")
    save = uses.index("actions/cache/save")
    assert restore < gate < save
    assert steps[save]["if"] == "always()"
    assert steps[save]["with"]["key"] == steps[restore]["with"]["key"]
    assert (
        steps[save]["with"]["path"] == steps[restore]["with"]["path"] == ".promptgate/cache.sqlite3"
    )
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert {"labeled", "unlabeled"} <= set(triggers["pull_request"]["types"])
    assert triggers["push"]["branches"] == ["main"]


# --- zizmor: the workflows people copy ---------------------------------------------------------


def zizmor(*inputs: Path, ignores: bool) -> list[dict[str, Any]]:
    """zizmor's findings (default persona, no network, no config file) on workflow files or repos.

    ignores=False also reports what inline `# zizmor: ignore[...]` comments hide, so a test sees
    exactly what was allowed and where."""
    hidden = {"GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN", "GH_HOST", "ZIZMOR_CONFIG"}
    env = {key: value for key, value in os.environ.items() if key not in hidden}
    command = [dev_tool("zizmor"), "--offline", "--no-config", "--no-progress", "--format=json"]
    command += ["--strict-collection"]  # a block that is not a valid workflow fails, not skipped
    if not ignores:
        command.append("--no-ignores")
    result = subprocess.run(
        [*command, *map(str, inputs)], capture_output=True, text=True, env=env, timeout=120
    )
    # exit 0: no finding; 10-14: findings (by their highest severity); anything else: it failed
    assert result.returncode == 0 or 10 <= result.returncode <= 14, result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def where(finding: dict[str, Any]) -> str:
    """`file:line: rule (severity): what: the flagged text`, from zizmor's primary location."""
    location = next(
        (loc for loc in finding["locations"] if loc["symbolic"]["kind"] == "Primary"),
        finding["locations"][0],
    )
    path = location["symbolic"]["key"]["Local"]["verbatim_path"]
    line = location["concrete"]["location"]["start_point"]["row"] + 1
    text = location["concrete"]["feature"].splitlines()[0]
    severity = finding["determinations"]["severity"]
    return f"{path}:{line}: {finding['ident']} ({severity}): {finding['desc']}: {text}"


def is_the_allowed_pin(finding: dict[str, Any]) -> bool:
    return finding["ident"] == "unpinned-uses" and any(
        loc["concrete"]["feature"].startswith(ALLOWED_PIN) for loc in finding["locations"]
    )


def assert_zizmor_clean(*inputs: Path) -> None:
    """No finding as a user runs zizmor; with the ignore comments off, only promptgate's own pin."""
    reported = zizmor(*inputs, ignores=True)
    assert not reported, "zizmor findings:\n" + "\n".join(map(where, reported))
    hidden = [f for f in zizmor(*inputs, ignores=False) if not is_the_allowed_pin(f)]
    assert not hidden, "findings hidden by an ignore comment:\n" + "\n".join(map(where, hidden))


def readme_workflows() -> list[str]:
    """The README's ```yaml blocks that are workflows (they have `jobs`): people copy them."""
    blocks = re.findall(r"^```ya?ml\n(.*?)^```$", (ROOT / "README.md").read_text(), re.S | re.M)
    return [block for block in blocks if "jobs" in as_mapping(yaml.safe_load(block))]


def as_mapping(document: object) -> dict[str, Any]:
    return document if isinstance(document, dict) else {}


def test_the_workflow_promptgate_init_writes_passes_zizmor(tmp_path: Path) -> None:
    init = subprocess.run(
        [sys.executable, "-m", "promptgate", "init", "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    assert (tmp_path / ".github/workflows/promptgate.yml").is_file()
    assert_zizmor_clean(tmp_path)  # the whole scaffolded repository, as its owner would run it


@pytest.mark.parametrize("workflow", [EXAMPLE, *WORKFLOWS], ids=lambda path: path.name)
def test_the_example_and_this_repositorys_workflows_pass_zizmor(workflow: Path) -> None:
    assert_zizmor_clean(workflow)


def test_the_readmes_workflows_pass_zizmor(tmp_path: Path) -> None:
    blocks = readme_workflows()
    assert len(blocks) >= 2, "the starter workflow and the sharding example"
    paths = []
    for number, block in enumerate(blocks, start=1):
        path = tmp_path / f"readme-workflow-{number}.yml"
        path.write_text(block, encoding="utf-8")
        paths.append(path)
    assert_zizmor_clean(*paths)


def test_the_readme_shows_the_workflow_init_writes() -> None:
    starter = STARTER.read_text()
    body = starter[starter.index("name: promptgate\n") :]  # the file's own header comment aside
    assert readme_workflows()[0] == body


def test_every_other_action_is_pinned_to_a_release_commit_named_in_a_comment() -> None:
    """`owner/repo@<40-hex sha> # vX.Y.Z`, and one sha per action across every copy."""
    texts = {path.relative_to(ROOT).as_posix(): path.read_text() for path in [EXAMPLE, *WORKFLOWS]}
    texts |= {f"README.md workflow {n}": block for n, block in enumerate(readme_workflows(), 1)}
    pinned = re.compile(
        r"(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) # (?P<tag>v\d+\.\d+\.\d+)"
    )
    unpinned: list[str] = []
    shas: dict[str, set[tuple[str, str]]] = {}
    for name, text in texts.items():
        jobs = as_mapping(yaml.safe_load(text))["jobs"].values()
        parsed = {job["uses"] for job in jobs if "uses" in job} | {
            step["uses"] for job in jobs for step in job.get("steps", []) if "uses" in step
        }
        lines = re.findall(r"^\s*(?:- )?uses: (\S+)(.*)$", text, re.M)
        assert {uses for uses, _ in lines} == parsed, f"{name}: a `uses:` this test cannot read"
        for uses, comment in lines:
            if uses.startswith(("$/", "./", ALLOWED_PIN)):
                continue
            match = pinned.fullmatch(f"{uses}{comment}")
            if match is None:
                unpinned.append(f"{name}: uses: {uses}{comment}")
            else:
                shas.setdefault(match["action"], set()).add((match["sha"], match["tag"]))
    assert not unpinned, "not pinned to a commit sha with a `# vX.Y.Z` comment:\n" + "\n".join(
        unpinned
    )
    assert {"actions/checkout", "actions/cache/restore", "actions/cache/save"} <= set(shas)
    assert all(len(versions) == 1 for versions in shas.values()), shas


# --- releases: the image by digest -------------------------------------------------------------

DIGEST = "ghcr.io/promptgate/promptgate@sha256:" + "0123456789abcdef" * 4


def release_action(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/release_action.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_release_tags_action_yml_pulls_the_image_by_digest_and_changes_nothing_else(
    tmp_path: Path,
) -> None:
    action = tmp_path / "action.yml"
    shutil.copy(ROOT / "action.yml", action)
    done = release_action(DIGEST, str(action))
    assert done.returncode == 0, done.stderr
    before, after = (ROOT / "action.yml").read_text(), action.read_text()
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert changed == [("  image: Dockerfile", f"  image: docker://{DIGEST}")]
    pinned, original = yaml.safe_load(after), yaml.safe_load(before)
    assert pinned["runs"] == {**original["runs"], "image": f"docker://{DIGEST}"}
    assert {k: v for k, v in pinned.items() if k != "runs"} == {
        k: v for k, v in original.items() if k != "runs"
    }
    assert_zizmor_clean(action)


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/promptgate/promptgate:1.4.0",  # a tag can move: a release pins the digest
        "ghcr.io/PromptGate/promptgate@sha256:" + "0" * 64,  # registries take lower case only
        "promptgate@sha256:" + "0" * 64,  # no registry: Docker Hub by accident
        DIGEST + "\n  env: {}",  # a second line smuggled into action.yml
    ],
)
def test_a_release_refuses_an_image_that_is_not_pinned_by_digest(
    tmp_path: Path, image: str
) -> None:
    action = tmp_path / "action.yml"
    shutil.copy(ROOT / "action.yml", action)
    done = release_action(image, str(action))
    assert done.returncode == 2 and "not an image by digest" in done.stderr
    assert action.read_text() == (ROOT / "action.yml").read_text()


def test_a_release_refuses_an_action_yml_that_does_not_build_the_dockerfile(
    tmp_path: Path,
) -> None:
    action = tmp_path / "action.yml"
    action.write_text((ROOT / "action.yml").read_text().replace("image: Dockerfile", "image: x"))
    done = release_action(DIGEST, str(action))
    assert done.returncode == 2 and "expected exactly 1" in done.stderr


def test_the_release_workflow_pushes_attested_multi_platform_images_then_tags() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    assert set(workflow[True]) == {"workflow_dispatch"}  # by hand, from main, never on a push
    image, tag = workflow["jobs"]["image"], workflow["jobs"]["tag"]
    assert image["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
        "attestations": "write",
    }
    assert tag["needs"] == "image" and tag["permissions"] == {"contents": "write"}
    steps = {step.get("uses", "").split("@")[0]: step for step in image["steps"]}
    build = steps["docker/build-push-action"]["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64" and build["push"] is True
    assert build["provenance"] == "mode=max" and build["sbom"] is True
    attest = steps["actions/attest-build-provenance"]["with"]
    assert attest["subject-digest"] == "${{ steps.build.outputs.digest }}"
    assert attest["push-to-registry"] is True
    (script,) = [step["run"] for step in tag["steps"] if "run" in step]
    assert 'scripts/release_action.py "$IMAGE" action.yml' in script
