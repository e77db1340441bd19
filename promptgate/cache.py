"""Content-addressed cache of completions in one sqlite file, shared safely between processes.

Writes are buffered and committed in batches (every `flush_every` answers or `flush_interval_s`
seconds, and on close): one commit per answer would dominate a fast run. Each batch is one
transaction in WAL mode, so a run that is killed loses at most its unflushed tail and never
leaves a corrupt file; `INSERT OR IGNORE` makes concurrent writers of the same key harmless.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from promptgate.errors import CouldNotEvaluate
from promptgate.providers.base import Completion, count_or_none
from promptgate.trust import SQLITE_COMPANIONS, STATE_DIR, ensure_state_dir, untrusted_reason

CACHE_DIR_ENV = "PROMPTGATE_CACHE_DIR"
CACHE_FILE_NAME = "cache.sqlite3"
# Well under SQLITE_MAX_VARIABLE_NUMBER, which is 999 in sqlite builds before 3.32.
_KEYS_PER_QUERY = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID
"""
#: What a call cost and whether a filter refused it, kept with its answer so that a cached
#: re-run reports the same; added to a cache made before they existed (its answers: none).
_ANSWER_COLUMNS = {
    "prompt_tokens": "INTEGER",
    "completion_tokens": "INTEGER",
    "latency_ms": "REAL",
    "refusal": "TEXT",
}
_COLUMNS = ("key", "text", "created_at", *_ANSWER_COLUMNS)


def _cached_answer(
    text: str,
    prompt_tokens: object,
    completion_tokens: object,
    latency_ms: object,
    refusal: object,
) -> Completion:
    """A stored answer, its usage kept only where it is a sane count (a cache file is data)."""
    latency = latency_ms if isinstance(latency_ms, (int, float)) and 0 <= latency_ms < 1e9 else None
    return Completion(
        text=text,
        prompt_tokens=count_or_none(prompt_tokens),
        completion_tokens=count_or_none(completion_tokens),
        latency_ms=None if latency is None else float(latency),
        cached=True,
        refusal=refusal[:200] if isinstance(refusal, str) and refusal else None,
    )


def default_cache_path(repo_root: Path) -> Path:
    """`$PROMPTGATE_CACHE_DIR/cache.sqlite3` when set, else `<repo_root>/.promptgate/...`."""
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    directory = Path(configured).expanduser() if configured else repo_root / STATE_DIR
    return directory / CACHE_FILE_NAME


def untrusted_cache(path: Path, repo_root: Path) -> str | None:
    """Why the cache at `path` may not be used: a cache the PR committed (or reached through a
    link it committed) would answer for it and decide the verdict (promptgate/trust.py)."""
    problem = untrusted_reason(path, companions=SQLITE_COMPANIONS, root=repo_root)
    if problem is None:
        return None
    return (
        f"the answer cache {path} was not used: {problem}. A cache that comes with the checkout "
        "could answer for the PR, so every call was made instead; keep the cache untracked (the "
        "starter workflow restores it with actions/cache)"
    )


def open_cache(path: Path, repo_root: Path) -> tuple[ResponseCache | None, str | None]:
    """The cache at `path`, or None and why not (`untrusted_cache`). Inside the repository's
    state directory it is made with that directory's `.gitignore`, so it is never committed."""
    problem = untrusted_cache(path, repo_root)
    if problem is not None:
        return None, problem
    if Path(os.path.abspath(path)).parent == Path(os.path.abspath(repo_root)) / STATE_DIR:
        ensure_state_dir(repo_root)
    return ResponseCache(path), None


class ResponseCache:
    def __init__(
        self,
        path: Path,
        *,
        flush_every: int = 64,
        flush_interval_s: float = 1.0,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        self._pending: dict[str, tuple[Completion, float]] = {}
        self._oldest_pending = 0.0
        self._lock = threading.Lock()
        self._closed = False
        connection: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer waits for
            # the lock up front (honouring the busy timeout) instead of failing on upgrade.
            connection = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn = connection
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            deadline = time.monotonic() + busy_timeout_s
            self._execute_despite_busy("PRAGMA journal_mode = WAL", deadline)
            # In WAL mode NORMAL is safe against a crashed process; only power loss can drop
            # the latest commits, and never corrupts the file.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._execute_despite_busy(_SCHEMA, deadline)
            present = {row[1] for row in self._conn.execute("PRAGMA table_info(completions)")}
            for column, kind in _ANSWER_COLUMNS.items():
                if column not in present:
                    self._add_column_despite_race(column, kind, deadline)
        except (OSError, sqlite3.Error) as exc:
            if connection is not None:
                connection.close()
            raise CouldNotEvaluate(
                f"cannot open the response cache ({exc}); if the file is damaged delete it, "
                "or run with --no-cache",
                file=str(self.path),
            ) from exc

    def _execute_despite_busy(self, statement: str, deadline: float) -> None:
        """Run a setup statement, waiting out other processes.

        sqlite skips the busy handler when two connections switch a new file to WAL at the
        same moment, and answers "database is locked" at once; so wait here instead.
        """
        while True:
            try:
                self._conn.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _add_column_despite_race(self, column: str, kind: str, deadline: float) -> None:
        """Add a usage column to an older cache; another process adding it first is fine."""
        try:
            self._execute_despite_busy(
                f"ALTER TABLE completions ADD COLUMN {column} {kind}", deadline
            )
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):
                raise

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        """The cached answer of every key that has one (marked cached), in one query per 500
        keys."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Completion] = {}
        with self._lock:
            for key in wanted:
                if key in self._pending:
                    found[key] = self._pending[key][0].model_copy(update={"cached": True})
            missing = [key for key in wanted if key not in found]
            for start in range(0, len(missing), _KEYS_PER_QUERY):
                chunk = missing[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT {', '.join(_COLUMNS)} FROM completions WHERE key IN ({marks})", chunk
                )
                for key, text, _created, *answer in rows:
                    found[key] = _cached_answer(text, *answer)
        return found

    def import_from(self, other: Path) -> int:
        """Copy every answer of another cache file into this one; returns how many were new."""
        with self._lock:
            self._flush_locked()
            before = self._count()
            try:
                self._conn.execute("ATTACH DATABASE ? AS other", (str(other),))
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    theirs = {
                        row[1] for row in self._conn.execute("PRAGMA other.table_info(completions)")
                    }
                    columns = [c for c in _COLUMNS if c in theirs]  # an older cache has fewer
                    listed = ", ".join(columns)
                    self._conn.execute(
                        f"INSERT OR IGNORE INTO completions ({listed}) SELECT {listed} "
                        "FROM other.completions"
                    )
                    self._conn.execute("COMMIT")
                finally:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    self._conn.execute("DETACH DATABASE other")
            except sqlite3.Error as exc:
                raise CouldNotEvaluate(
                    f"cannot read answers from {other} ({exc})", file=str(other)
                ) from exc
            return self._count() - before

    def _count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM completions").fetchone()[0])

    def put(self, key: str, answer: Completion) -> None:
        with self._lock:
            if self._closed:
                raise ValueError(f"the response cache {self.path} is closed")
            now = time.monotonic()
            if not self._pending:
                self._oldest_pending = now
            self._pending.setdefault(key, (answer, time.time()))
            due = (
                len(self._pending) >= self.flush_every
                or now - self._oldest_pending >= self.flush_interval_s
            )
            if due:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending or self._closed:
            return
        rows = [
            (key, a.text, created, a.prompt_tokens, a.completion_tokens, a.latency_ms, a.refusal)
            for key, (a, created) in self._pending.items()
        ]
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    f"INSERT OR IGNORE INTO completions ({', '.join(_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                    rows,
                )
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:  # the answers stay buffered; a later flush may succeed
            raise CouldNotEvaluate(
                f"cannot write the response cache ({exc}); run with --no-cache to do without",
                file=str(self.path),
            ) from exc
        self._pending.clear()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_locked()
            finally:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
