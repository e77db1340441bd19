"""Run a snippet in a new Python process: what a module imports, or leaves behind, is only
visible in a process that has not imported it yet."""

from __future__ import annotations

import subprocess
import sys


def python_stdout(program: str, *, timeout: float = 120) -> str:
    """The program's standard output; a failure raises CalledProcessError with its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout
