"""entrypoint.py run as GitHub runs a container action: in a workspace with an event file, output
and summary files and a home directory, against the LLM stub and the GitHub REST stub.

A `Launcher` runs it: `LocalLaunch` in this Python, `ImageLaunch` inside the built image with
GitHub's own mount points (/github/workspace, /github/workflow, /github/file_commands,
/github/home) and the host's network, so the stubs on 127.0.0.1 answer both the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from events import pull_request
from gate_fixtures import API_KEY, API_KEY_ENV, config_yaml, jsonl
from github_stub import GitHubStub
from gitrepo import RepoBuilder
from llm_stub import LLMStub

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "acme/prompts"
PR = 7
GOOD = "{{ text }}\n"
BAD = "Well, let me think about this one very carefully and at great length: {{ text }}\n"
#: Each run's deadline: a gate that hangs is a failure, not a stuck suite.
RUN_TIMEOUT_S = 600

#: The directories GitHub mounts into a container action, by their place under a test's tmp.
GITHUB_MOUNTS = {
    "workspace": "/github/workspace",
    "workflow": "/github/workflow",
    "file_commands": "/github/file_commands",
    "home": "/github/home",
}


class Launcher(Protocol):
    def visible(self, host_path: Path) -> str:
        """`host_path` as the gate's process sees it."""
        ...

    def run(
        self, env: dict[str, str], tmp: Path, wrapper: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        """entrypoint.py with exactly `env`, in the workspace under `tmp`; with `wrapper`, that
        command runs it (its arguments end with entrypoint.py's command line)."""
        ...


class LocalLaunch:
    """entrypoint.py from this checkout, in this Python."""

    def visible(self, host_path: Path) -> str:
        return str(host_path)

    def run(
        self, env: dict[str, str], tmp: Path, wrapper: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*wrapper, sys.executable, str(ROOT / "entrypoint.py")],
            env={"PATH": os.environ["PATH"], **env},
            cwd=tmp / "workspace",
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )


@dataclass
class ImageLaunch:
    """The image's own entrypoint in a fresh container per run, as `docker run` starts a container
    action; where no Docker engine answers, buildah runs the same image (chroot isolation)."""

    image: str
    engine: str = field(default_factory=lambda: container_engine())

    def visible(self, host_path: Path) -> str:
        for place, mount in GITHUB_MOUNTS.items():
            for parent in (host_path, *host_path.parents):
                if parent.name == place:
                    return str(PurePosixPath(mount) / host_path.relative_to(parent))
        raise ValueError(f"{host_path} is in no directory GitHub mounts into the container")

    def run(
        self, env: dict[str, str], tmp: Path, wrapper: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        for place in GITHUB_MOUNTS:
            (tmp / place).mkdir(exist_ok=True)
        mounts = {str(tmp / place): mount for place, mount in GITHUB_MOUNTS.items()}
        command = [*wrapper, *self.entrypoint()] if wrapper else None
        return self._container(env, mounts, GITHUB_MOUNTS["workspace"], command)

    def entrypoint(self) -> list[str]:
        """The image's ENTRYPOINT (`buildah run` does not apply it, so buildah runs it itself)."""
        if self.engine == "docker":
            inspect = ["docker", "image", "inspect", "--format", "{{json .Config.Entrypoint}}"]
        else:  # buildah's templates have no `json`: the whole description, then its field
            inspect = ["buildah", "inspect", "--type", "image"]
        inspected = subprocess.run(
            [*inspect, self.image], capture_output=True, text=True, check=True, timeout=120
        )
        described = json.loads(inspected.stdout)
        entrypoint: list[str] = (
            described if self.engine == "docker" else described["OCIv1"]["config"]["Entrypoint"]
        )
        return entrypoint

    def python(self, program: str) -> str:
        """What `python -c program` prints in a fresh container of the image."""
        done = self._container({}, {}, "/", command=["python", "-c", program])
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def _container(
        self,
        env: dict[str, str],
        mounts: dict[str, str],
        workdir: str,
        command: list[str] | None,
    ) -> subprocess.CompletedProcess[str]:
        """`command` (None: the image's ENTRYPOINT) in a fresh container, removed after."""
        volumes = [flag for host, inside in mounts.items() for flag in ("-v", f"{host}:{inside}")]
        if self.engine == "docker":
            start = ["docker", "run", "--rm", "--network", "host", "--workdir", workdir, *volumes]
            start += [flag for name in env for flag in ("-e", name)]  # values from our env
            if command:
                start += ["--entrypoint", command[0], self.image, *command[1:]]
            else:
                start.append(self.image)
            return _run(start, env={**os.environ, **env})
        container = subprocess.run(
            ["buildah", "from", "--pull-never", self.image],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        try:
            start = ["buildah", "run", "--isolation=chroot", "--network", "host"]
            start += ["--workingdir", workdir, *volumes]
            start += [flag for name, value in env.items() for flag in ("--env", f"{name}={value}")]
            return _run([*start, container, "--", *(command or self.entrypoint())], None)
        finally:
            subprocess.run(["buildah", "rm", container], capture_output=True, timeout=120)


def container_engine() -> str:
    """docker when an engine answers, else buildah (this machine: no Docker engine)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return "docker"
    if shutil.which("buildah"):
        return "buildah"
    raise RuntimeError("neither a Docker engine nor buildah is available to run the image")


def _run(command: list[str], env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


@dataclass
class ActionRun:
    code: int
    log: str
    outputs: dict[str, str]
    summary: str


@dataclass
class Workspace:
    builder: RepoBuilder
    tmp: Path
    llm: LLMStub
    github: GitHubStub
    launcher: Launcher

    @property
    def mlflow_db(self) -> Path:
        return self.tmp / "home" / "mlflow.db"

    def run(
        self,
        event: str,
        payload: dict[str, object],
        env_overrides: dict[str, str] | None = None,
        *,
        wrapper: Sequence[str] = (),
        **inputs: str,
    ) -> ActionRun:
        event_path = self.tmp / "workflow" / "event.json"
        output = self.tmp / "file_commands" / "output"
        summary = self.tmp / "file_commands" / "summary.md"
        for file in (event_path, output, summary):
            file.parent.mkdir(exist_ok=True)
        event_path.write_text(json.dumps(payload))
        output.write_text("")
        summary.write_text("")
        seen = self.launcher.visible
        env = {
            "HOME": seen(self.tmp / "home"),
            "HF_HUB_OFFLINE": "1",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": seen(event_path),
            "GITHUB_WORKSPACE": seen(self.builder.root),
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_API_URL": self.github.api_url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "1001",
            "GITHUB_ACTOR": "octocat",
            "GITHUB_SHA": self.builder.repo.head.commit.hexsha,
            "GITHUB_OUTPUT": seen(output),
            "GITHUB_STEP_SUMMARY": seen(summary),
            "INPUT_GITHUB-TOKEN": self.github.token,
            "INPUT_CONFIG": "promptgate.yaml",
            "INPUT_COMMENT": "true",
            "INPUT_FAIL-ON-REGRESSION": "true",
            API_KEY_ENV: API_KEY,
        }
        env.update(
            {f"INPUT_{name.upper().replace('_', '-')}": value for name, value in inputs.items()}
        )
        env.update(env_overrides or {})
        result = self.launcher.run(env, self.tmp, wrapper)
        return ActionRun(
            result.returncode,
            result.stdout + result.stderr,
            _outputs(output.read_text()),
            summary.read_text(),
        )

    def pr_event(self, action: str = "opened") -> dict[str, object]:
        base = self.builder.repo.heads["main"].commit.hexsha
        return pull_request(action, PR, base, self.builder.repo.head.commit.hexsha)


def _outputs(text: str) -> dict[str, str]:
    """Parse GITHUB_OUTPUT's heredoc format (name<<DELIMITER / value / DELIMITER)."""
    values, lines = {}, iter(text.splitlines())
    for line in lines:
        name, delimiter = line.split("<<", 1)
        value = []
        for inner in lines:
            if inner == delimiter:
                break
            value.append(inner)
        values[name] = "\n".join(value)
    return values


def new_workspace(
    tmp_path: Path,
    llm: LLMStub,
    github: GitHubStub,
    launcher: Launcher | None = None,
    *,
    metrics: str | None = None,
) -> Workspace:
    """A repository with one prompt and its eval set on main, checked out on a `pr` branch."""
    launcher = launcher or LocalLaunch()
    builder = RepoBuilder(tmp_path / "workspace")
    (tmp_path / "home").mkdir(exist_ok=True)
    workspace = Workspace(builder, tmp_path, llm, github, launcher)
    options = {} if metrics is None else {"metrics": metrics}
    config = config_yaml(llm, PurePosixPath(launcher.visible(workspace.mlflow_db)), **options)
    builder.commit(
        {"promptgate.yaml": config, "prompts/a.txt": GOOD, "evals/a.jsonl": jsonl()},
        "prompts",
    )
    builder.branch("pr")
    return workspace
