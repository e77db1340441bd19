"""A real `mlflow server` process on 127.0.0.1, for tests that talk to MLflow over HTTP.

    with running_mlflow_server(tmp_path) as server:
        MlflowClient(tracking_uri=server.uri) ...

conftest.py offers it as the `mlflow_server` fixture.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

STARTUP_TIMEOUT_S = 90


@dataclass
class MlflowServer:
    uri: str
    artifacts: Path
    startup_seconds: float


def closed_port() -> int:
    """A port nothing listens on (free now; a server may take it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_mlflow_server(directory: Path) -> Iterator[MlflowServer]:
    """`mlflow server` on a free port with a SQLite store and proxied artifacts in `directory`."""
    port = closed_port()
    artifacts = directory / "artifacts"
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # no huey workers
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{directory}/server.db",
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log_path = directory / "server.log"
    log = log_path.open("w")
    started = time.monotonic()
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_for_health(f"http://127.0.0.1:{port}/health", server, log_path)
        yield MlflowServer(f"http://127.0.0.1:{port}", artifacts, time.monotonic() - started)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server runs uvicorn in a child process
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _wait_for_health(url: str, server: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"mlflow server not healthy after {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")
