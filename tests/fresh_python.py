"""Run a snippet in a new Python process: what a module imports, or leaves behind, is only
visible in a process that has not imported it yet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def python_stdout(program: str, *, timeout: float = 120) -> str:
    """The program's standard output; a failure raises CalledProcessError with its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout


def promptgate_cli(
    *args: str, cwd: Path, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m promptgate ARGS` in `cwd`, offline, as a user runs it. `env` adds variables
    to the environment, or removes those it maps to None."""
    merged: dict[str, str | None] = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
        **(env or {}),
    }
    environment = {name: value for name, value in merged.items() if value is not None}
    return subprocess.run(
        [sys.executable, "-m", "promptgate", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
