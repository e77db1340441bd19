"""Where exports live and what names them: the model's files and the exporter's versions.

An entry is `<model>-<key>`, a directory beside the others in `cache_root()`. An export installed
under a model's name (`installed/<model>.json`) is found by that name alone, without the model's
files or the exporter: what a slim installation has.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from promptgate.metrics.embedding._onnx import EXPORT_FORMAT, DamagedEntry, OnnxEmbedder

#: The ONNX opset exports are made with (part of every entry's key).
OPSET = 17
#: Where installed exports are listed, one `<model>.json` each, inside the cache root.
INSTALLED = "installed"


class ExportFailed(Exception):
    """The model could not be exported to ONNX, or the export did not match sentence-transformers."""


def cache_root() -> Path:
    """Where exports are kept; `PROMPTGATE_MODEL_CACHE` moves it (the Docker image sets it)."""
    if configured := os.environ.get("PROMPTGATE_MODEL_CACHE"):
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "promptgate" / "models"


def model_fingerprint(directory: Path) -> str:
    """SHA-256 over every file's relative path, size and content (hidden paths such as .git and
    .cache skipped).

    Hashing MiniLM's 91 MB took 0.94 s here, in every run's start-up, so the result is kept in
    the cache beside the exports, under the files' paths, sizes and modification times: a file
    that changes gets a new time and is hashed again. A read-only cache just hashes every time.
    """
    files = sorted(
        path
        for path in directory.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )
    identity = [str(directory.resolve())] + [
        f"{path.relative_to(directory).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}"
        for path in files
        for stat in [path.stat()]
    ]
    key = hashlib.sha256("\n".join(identity).encode()).hexdigest()
    remembered = cache_root() / f"{key[:32]}.fingerprint"  # a file beside the export directories
    with contextlib.suppress(OSError):
        known = remembered.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{64}", known):
            return known
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            content = hashlib.file_digest(handle, "sha256").hexdigest()
        relative = path.relative_to(directory).as_posix()
        digest.update(f"{relative}\0{path.stat().st_size}\0{content}\n".encode())
    fingerprint = digest.hexdigest()
    with contextlib.suppress(OSError):  # a read-only cache: hashed again next time
        _write_whole(remembered, fingerprint)
    return fingerprint


def exporter_versions() -> dict[str, str | int]:
    """What an export depends on besides the model; a change means a new export."""
    return {
        "format": EXPORT_FORMAT,
        "opset": OPSET,
        **{
            name: package_version(name)
            for name in ("torch", "transformers", "sentence-transformers")
        },
    }


def entry_name(model_name: str, directory: Path) -> str:
    """`<model>-<key>`: the key covers the model's files and the exporter's versions."""
    key = hashlib.sha256(
        json.dumps(
            {"model": model_fingerprint(directory), **exporter_versions()}, sort_keys=True
        ).encode()
    ).hexdigest()
    return f"{safe_name(model_name)}-{key[:24]}"


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One exporting process at a time; the others wait, then load what it exported."""
    with lock_path.open("a+b") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX: unlocked, and the rename below still keeps entries whole
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def put_in_place(staging: Path, entry: Path) -> None:
    """Rename the finished export into place; a damaged entry there is moved aside first."""
    for _ in range(3):
        try:
            staging.rename(entry)
            return
        except OSError:
            if not entry.exists():
                raise
        try:
            OnnxEmbedder(entry)
            return  # a whole entry appeared (an unlocked writer): keep it
        except (FileNotFoundError, DamagedEntry):
            pass
        trash = Path(tempfile.mkdtemp(prefix=f".{entry.name}.old.", dir=entry.parent))
        with contextlib.suppress(FileNotFoundError):
            entry.rename(trash / "entry")
        shutil.rmtree(trash, ignore_errors=True)
    raise ExportFailed(f"could not put the export in place at {entry}")


def safe_name(model_name: str) -> str:
    """A model name as one path component."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_name).strip("._") or "model"


def install(model_name: str, entry: Path, package: str | None) -> Path:
    """List `entry` (a whole export in the cache root) as this installation's `model_name`."""
    if entry.resolve().parent != cache_root().resolve():
        raise ValueError(f"{entry} is not an entry of the cache at {cache_root()}")
    listing = cache_root() / INSTALLED / f"{safe_name(model_name)}.json"
    record = {"format": EXPORT_FORMAT, "model": model_name, "entry": entry.resolve().name}
    _write_whole(listing, json.dumps(record | {"package": package}))
    return listing


def _write_whole(path: Path, text: str) -> None:
    """Write `path` under another name, then rename it: a reader sees all of it or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.write_text(text, encoding="utf-8")
    staging.replace(path)


def installed_export(model_name: str) -> tuple[Path, str | None] | None:
    """The entry installed as `model_name`, and the package it came from; None when there is none.

    A listing that does not name an entry of this cache (another format, a path) is ignored."""
    listing = cache_root() / INSTALLED / f"{safe_name(model_name)}.json"
    try:
        record = json.loads(listing.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != EXPORT_FORMAT:
        return None
    entry, package = record.get("entry"), record.get("package")
    if record.get("model") != model_name or not isinstance(entry, str):
        return None
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", entry):
        return None
    return cache_root() / entry, package if isinstance(package, str) else None


def package_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "missing"
