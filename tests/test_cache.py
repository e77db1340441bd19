"""The response cache: a sqlite file that survives crashes and concurrent writers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from promptgate.cache import ResponseCache, default_cache_path, open_cache
from promptgate.errors import CouldNotEvaluate
from promptgate.providers.base import Completion


def answer(text: str) -> Completion:
    return Completion(text=text)


def texts(found: dict[str, Completion]) -> dict[str, str]:
    return {key: completion.text for key, completion in found.items()}


def rows_on_disk(path: Path) -> dict[str, str]:
    """What another process would see: a fresh connection, no access to the writer's buffer."""
    with closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT key, text FROM completions"))


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_an_answer_can_be_read_back_before_and_after_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with ResponseCache(path) as cache:
        cache.put("k1", answer("first answer"))
        assert texts(cache.get_many(["k1", "k2"])) == {"k1": "first answer"}
        assert rows_on_disk(path) == {}  # still buffered
    assert rows_on_disk(path) == {"k1": "first answer"}  # written on close
    with ResponseCache(path) as reopened:
        assert texts(reopened.get_many(["k1", "k2", "k1"])) == {"k1": "first answer"}


def test_writes_are_batched_not_committed_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with ResponseCache(path, flush_every=64, flush_interval_s=3600) as cache:
        for i in range(63):
            cache.put(f"k{i}", answer(f"answer {i}"))
        assert rows_on_disk(path) == {}
        cache.put("k63", answer("answer 63"))
        assert len(rows_on_disk(path)) == 64
        cache.put("k64", answer("answer 64"))
        assert len(rows_on_disk(path)) == 64
        cache.flush()
        assert len(rows_on_disk(path)) == 65


def test_a_quiet_buffer_is_written_after_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with ResponseCache(path, flush_interval_s=0.05) as cache:
        cache.put("early", answer("a"))
        time.sleep(0.1)
        cache.put("late", answer("b"))
        assert rows_on_disk(path) == {"early": "a", "late": "b"}


def test_the_first_answer_for_a_key_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with ResponseCache(path) as cache:
        cache.put("k", answer("first"))
        cache.put("k", answer("second"))  # same buffer
    with ResponseCache(path) as cache:
        cache.put("k", answer("third"))  # already on disk
        cache.flush()
        assert texts(cache.get_many(["k"])) == {"k": "first"}
    assert rows_on_disk(path) == {"k": "first"}


def test_thousands_of_keys_are_looked_up_at_once(tmp_path: Path) -> None:
    keys = [f"key-{i:05d}" for i in range(2500)]
    with ResponseCache(tmp_path / "cache.sqlite3") as cache:
        for key in keys:
            cache.put(key, answer(key.upper()))
        cache.flush()
        found = texts(cache.get_many([*keys, "missing-1", "missing-2"]))
    assert found == {key: key.upper() for key in keys}


def test_the_file_uses_write_ahead_logging(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    ResponseCache(path).close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_closing_is_idempotent_and_a_closed_cache_refuses_writes(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite3")
    cache.put("k", answer("v"))
    cache.close()
    cache.close()
    with pytest.raises(ValueError, match="closed"):
        cache.put("k2", answer("v2"))
    assert rows_on_disk(tmp_path / "cache.sqlite3") == {"k": "v"}


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from promptgate.cache import ResponseCache
    from promptgate.providers.base import Completion

    path, name, count, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    (path.parent / f"ready-{name}").touch()
    go, deadline = path.parent / "go", time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    started = time.time()
    cache = ResponseCache(path, flush_every=batch)
    for i in range(count):
        # keys below 1000 are written by every writer, the rest by this one only
        key = f"shared-{i}" if i < 1000 else f"{name}-{i}"
        cache.put(key, Completion(text=f"{name} answer {i}"))
        assert cache.get_many([key])
    if name == "crash":
        os.kill(os.getpid(), 9)  # no close, no final flush
    cache.close()
    print(started, time.time())
    """
)


def run_writers(path: Path, *writers: tuple[str, int, int]) -> list[tuple[int, str, str]]:
    """Run writer processes (name, answers, batch size), released at the same moment.

    Returns each one's exit code, stdout and stderr."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(count), str(batch)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, count, batch in writers
    ]
    deadline = time.monotonic() + 30
    while not all((path.parent / f"ready-{name}").exists() for name, _, _ in writers):
        assert time.monotonic() < deadline, "writers did not start"
        time.sleep(0.001)
    (path.parent / "go").touch()
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        results.append((process.returncode, stdout, stderr))
    return results


def test_two_processes_can_fill_one_cache_at_the_same_time(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    left, right = run_writers(path, ("left", 3000, 10), ("right", 3000, 10))

    spans = []
    for returncode, stdout, stderr in (left, right):
        assert returncode == 0, stderr
        spans.append([float(t) for t in stdout.split()])
    (left_start, left_end), (right_start, right_end) = spans
    assert max(left_start, right_start) < min(left_end, right_end), "the writers did not overlap"

    rows = rows_on_disk(path)
    assert len(rows) == 1000 + 2 * 2000
    assert all(rows[f"left-{i}"] == f"left answer {i}" for i in range(1000, 3000))
    assert all(rows[f"right-{i}"] == f"right answer {i}" for i in range(1000, 3000))
    assert all(
        rows[f"shared-{i}"] in (f"left answer {i}", f"right answer {i}") for i in range(1000)
    )
    assert integrity(path) == "ok"


def test_a_killed_writer_loses_only_its_unflushed_tail(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    [(returncode, _, _)] = run_writers(path, ("crash", 1234, 100))
    assert returncode == -9

    assert integrity(path) == "ok"
    assert len(rows_on_disk(path)) == 1200  # twelve full batches; the 34 after them are lost
    with ResponseCache(path) as cache:  # and the file is as usable as ever
        cache.put("after", answer("the crash"))
    assert rows_on_disk(path)["after"] == "the crash"


def test_a_file_that_is_not_a_cache_is_reported_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(CouldNotEvaluate) as raised:
        ResponseCache(path)
    assert str(path) in str(raised.value)
    assert "--no-cache" in str(raised.value)


def test_the_cache_lives_in_the_repository_unless_a_directory_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.delenv("PROMPTGATE_CACHE_DIR", raising=False)
    path = default_cache_path(repo)
    assert path == repo / ".promptgate" / "cache.sqlite3"
    cache, problem = open_cache(path, repo)
    assert cache is not None and problem is None
    cache.close()
    assert (path.parent / ".gitignore").read_text().splitlines()[-1] == "*"

    monkeypatch.setenv("PROMPTGATE_CACHE_DIR", str(tmp_path / "shared" / "cache"))
    path = default_cache_path(repo)
    assert path == tmp_path / "shared" / "cache" / "cache.sqlite3"
    cache, problem = open_cache(path, repo)
    assert cache is not None and problem is None
    cache.close()
    assert path.parent.is_dir() and not (path.parent / ".gitignore").exists()


def test_opening_a_cache_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "cache.sqlite3"
    with ResponseCache(path) as cache:
        cache.put("k", answer("v"))
    assert rows_on_disk(path) == {"k": "v"}
