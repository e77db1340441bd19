"""The MLflow store a gate logs to: which one (`resolve_tracking_uri`), whether promptgate may use
it (a store or artifact location that came with the checkout may not), how it is opened early
(`prepare_in_background`) and under what settings (`mlflow_environment`), and how its failures
read. What is logged there is tracking.py's part.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from promptgate.background import import_in_background
from promptgate.config import MlflowConfig
from promptgate.trust import SQLITE_COMPANIONS, STATE_DIR, ensure_state_dir, untrusted_reason

if TYPE_CHECKING:
    from mlflow import MlflowClient


TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow's own default for a new store
#: What a database tracking URI (sqlite:///, postgresql://, ...) loads: about 1.2 s more
SQL_STORE_MODULE = "mlflow.store.tracking.sqlalchemy_store"

# MLflow retries an unreachable store for minutes by default (7 retries, 2 s backoff factor,
# 120 s timeout). A CI gate should give up in seconds. A value the user set wins.
FAIL_FAST_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# set_terminated() would print a "View run" link to stdout; our reports carry the link.
FORCED_ENV = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
QUIET_LOGGERS = ("mlflow", "alembic")

#: `prepare_in_background`'s thread per tracking URI, which `log_gate_run` waits for
_preparing: dict[str, threading.Thread] = {}


class StoreProblem(Exception):
    """A store problem already phrased for the user."""


def prepare_in_background(settings: MlflowConfig, explicit: str | None = None) -> None:
    """While the calls run: import MLflow, and for a local sqlite store also open it, creating
    its tables when it is new (its schema migrations took 1.5-3 s after the verdict).
    `log_gate_run` waits for this before it uses the store."""
    uri = resolve_tracking_uri(settings, explicit)
    if sqlite_path(uri) is not None:
        thread = threading.Thread(
            target=_open_store_quietly, args=(uri,), name="promptgate-prepare-mlflow", daemon=True
        )
        _preparing[uri] = thread
        thread.start()
        return
    remote = uri.startswith(("http://", "https://", "databricks"))
    import_in_background("mlflow", *([] if remote else [SQL_STORE_MODULE]))


def _open_store_quietly(uri: str) -> None:
    # A failure here is met again by log_gate_run, which reports it.
    with contextlib.suppress(Exception), mlflow_environment():
        from mlflow import MlflowClient

        check_store_file(uri)
        ensure_sqlite_directory(uri)
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def wait_for_preparation(uri: str) -> None:
    thread = _preparing.pop(uri, None)
    if thread is not None:
        thread.join()


def resolve_tracking_uri(
    settings: MlflowConfig, explicit: str | None = None, *, local_dir: Path | None = None
) -> str:
    """`explicit` > $MLFLOW_TRACKING_URI > the config > `sqlite:///mlflow.db`. With `local_dir`
    (promptgate's state directory, `.promptgate/`), a relative sqlite path is placed there
    rather than in the working directory: beside files people commit, and where a PR could
    have committed a store of its own."""
    uri = (
        explicit
        or os.environ.get(TRACKING_URI_ENV)
        or settings.tracking_uri
        or DEFAULT_TRACKING_URI
    )
    path = sqlite_path(uri)
    if local_dir is None or path is None or Path(path).is_absolute():
        return uri
    query = uri.partition("?")[2]
    return f"sqlite:///{(local_dir / path).as_posix()}" + (f"?{query}" if query else "")


def local_state_dir(repo_root: Path) -> Path:
    """Where a local run keeps a relative sqlite store: `<repo>/.promptgate`, which git
    ignores. When that directory is not promptgate's (git tracks it, it is a link), it is still
    the answer, and `check_store_file` refuses the store there with the reason."""
    return ensure_state_dir(repo_root) or repo_root / STATE_DIR


def sqlite_path(uri: str) -> str | None:
    """The database file of a `sqlite:///` URI (None for other stores and in-memory ones)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return path if path and path != ":memory:" else None


def check_store_file(uri: str) -> None:
    """Refuse a sqlite store that came with the checkout: a store a PR committed (or reached
    through a link it committed) decides where the run's prompts, outputs and report go."""
    path = sqlite_path(uri)
    problem = path and untrusted_reason(Path(path), companions=SQLITE_COMPANIONS)
    if problem:
        raise StoreProblem(
            f"the store file is not promptgate's to use ({problem}): a store that comes with "
            "the checkout could send the run's data wherever a PR chose. Keep it untracked, "
            "or set mlflow.tracking_uri to a server or a path outside the repository"
        )


def redact_uri(uri: str) -> str:
    """The URI without user or password: it is shown in PR comments and logs."""
    parts = urllib.parse.urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def run_url(uri: str, experiment_id: str, run_id: str, ui_url: str | None = None) -> str | None:
    """The MLflow UI page of a run: under `ui_url` (`mlflow.ui_url`, a UI serving this store)
    when given, else under an http(s) tracking server; None for a store with no UI known."""
    base = ui_url or (uri if urllib.parse.urlsplit(uri).scheme in ("http", "https") else None)
    if base is None:
        return None
    return f"{redact_uri(base).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@contextmanager
def mlflow_environment() -> Iterator[None]:
    """Fail-fast HTTP settings, quiet loggers and no deprecation noise, all restored afterwards."""
    import mlflow  # noqa: F401 - it sets its loggers' levels on import, so import before quieting

    changes = {k: v for k, v in FAIL_FAST_HTTP_ENV.items() if k not in os.environ} | FORCED_ENV
    saved_env = {key: os.environ.get(key) for key in changes}
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    saved_levels = [lg.level for lg in loggers]
    os.environ.update(changes)
    for lg in loggers:
        if lg.getEffectiveLevel() < logging.WARNING:
            lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # MLflow's own dependencies (SQLAlchemy, pandas) warn about MLflow's usage of them.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for lg, level in zip(loggers, saved_levels, strict=True):
            lg.setLevel(level)


def ensure_sqlite_directory(uri: str) -> None:
    """MLflow creates the database file but not its directory."""
    path = sqlite_path(uri)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


_PROBLEMS = (
    ("connection refused", "connection refused: is the server running?"),
    ("failed to establish a new connection", "connection failed: is the server running?"),
    ("timed out", "timed out"),
    ("name or service not known", "host not found"),
    ("temporary failure in name resolution", "host not found"),
    ("nodename nor servname", "host not found"),
    ("error code 401", "not authorized: check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME"),
    ("401 client error", "not authorized: check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME"),
    ("error code 403", "forbidden: check the credentials' permissions"),
    ("403 client error", "forbidden: check the credentials' permissions"),
    ("unable to open database file", "cannot open the SQLite database file"),
)


def describe_store_problem(exc: BaseException, uri: str) -> str:
    """One short phrase for a store failure; MLflow's own messages run to a screenful."""
    if isinstance(exc, StoreProblem):
        return str(exc)
    text = str(exc).replace(uri, redact_uri(uri))
    lowered = text.lower()
    for needle, phrase in _PROBLEMS:
        if needle in lowered:
            return phrase
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first_line if len(first_line) <= 200 else first_line[:200] + "…"


def _artifact_location(uri: str) -> str | None:
    """Beside a sqlite store's file, not MLflow's default `./mlruns` in whatever the cwd is."""
    path = sqlite_path(uri)
    if path is None:
        return None
    return (Path(path).resolve().parent / "mlartifacts").as_uri()


def _check_artifact_location(uri: str, name: str, location: str) -> None:
    """A local store's experiment keeps its artifacts beside the store, where promptgate put
    them. Anywhere else (another directory, an http:// or s3:// location) was chosen by whoever
    wrote the store, not by the trusted config, so nothing is sent there."""
    path = sqlite_path(uri)
    if path is None:
        return  # a tracking server decides where its artifacts go
    home = Path(path).resolve().parent
    parts = urllib.parse.urlsplit(location)
    if parts.scheme == "file":
        target = Path(urllib.request.url2pathname(parts.path))
    elif not parts.scheme:
        target = Path(location)
    else:
        target = None
    if target is None or not target.resolve().is_relative_to(home):
        raise StoreProblem(
            f"experiment '{name}' keeps its artifacts at {redact_uri(location)}, outside the "
            f"store's directory {home}; promptgate sends artifacts only where it made the "
            "experiment. Set mlflow.experiment to a new name, or use a store promptgate created"
        )


def open_experiment(client: MlflowClient, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name, artifact_location=_artifact_location(uri)))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)  # created concurrently
            if experiment is None:
                raise
    _check_artifact_location(uri, name, experiment.artifact_location)
    if experiment.lifecycle_stage == "deleted":
        raise StoreProblem(
            f"experiment '{name}' is deleted; restore it (`mlflow experiments restore`) or set "
            "mlflow.experiment to another name"
        )
    return str(experiment.experiment_id)
