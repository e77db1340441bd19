"""Which embedder a process uses for a model, and the per-process caches of embedders and vectors.

An installed export is used as it is; otherwise the cached export keyed by the model's files, made
(under a lock, once) when missing or damaged; when the export cannot be made or does not match,
sentence-transformers itself (slower, and said on stderr).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from promptgate.errors import BadInput, GateError
from promptgate.metrics.base import FloatArray
from promptgate.metrics.embedding import _export
from promptgate.metrics.embedding._cache import (
    ExportFailed,
    cache_root,
    entry_name,
    exclusive,
    put_in_place,
)
from promptgate.metrics.embedding._onnx import DamagedEntry, Embedder, OnnxEmbedder, one_line
from promptgate.metrics.embedding._source import ModelSource

#: Texts whose embeddings are kept per model (~3 KB each for MiniLM): the references, and
#: outputs both prompt versions share, are embedded once per run, not once per side.
CACHE_LIMIT = 50_000

_embedders: dict[str, Embedder] = {}
_embeddings: dict[str, dict[str, FloatArray]] = {}
_lock = threading.RLock()


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
    if source.installed:
        return _open_installed(source)
    try:
        return _open_onnx(source)
    except GateError:
        raise
    except Exception as exc:  # ExportFailed, OSError on the cache, whatever torch.onnx raised
        model = _export.load_model(source)
        hint = (
            " (set PROMPTGATE_MODEL_CACHE to a writable directory)"
            if isinstance(exc, OSError)
            else ""
        )
        print(
            f"promptgate: the semantic metric embeds {source.name} with sentence-transformers "
            f"(slower) because the ONNX export could not be used: {one_line(exc)}{hint}",
            file=sys.stderr,
        )
        return _export.SentenceTransformerEmbedder(model)


def _open_installed(source: ModelSource) -> OnnxEmbedder:
    """An installed export is all there is: damaged, it is an error, never a silent re-export."""
    try:
        return OnnxEmbedder(Path(source.location))
    except (OSError, DamagedEntry, ImportError) as exc:
        raise BadInput(
            f"the semantic metric's model {source.name} is installed as the export at "
            f"{source.location}, which cannot be used ({one_line(exc)}). Install it again where "
            f"torch and sentence-transformers are installed: `python -m "
            f"promptgate.metrics.embedding --prepare {source.name} --install`."
        ) from exc


def _open_onnx(source: ModelSource) -> OnnxEmbedder:
    directory = _model_directory(source)
    if directory is None:
        _export.load_model(source)  # a Hub model: downloads it, or raises BadInput
        directory = _model_directory(source)
        if directory is None:
            raise ExportFailed(f"the files of {source.location} are not in the Hugging Face cache")
    entry = cache_root() / entry_name(source.name, directory)
    with contextlib.suppress(FileNotFoundError, DamagedEntry):
        return OnnxEmbedder(entry)  # the warm path: no lock, no writes
    entry.parent.mkdir(parents=True, exist_ok=True)
    # One lock for the whole cache: exports are rare, and one file leaves nothing per model behind.
    with exclusive(entry.parent / "export.lock"):
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
            _export.export(source, staging)
            staging.chmod(0o755)  # mkdtemp's 0700 would hide it from other users (a Docker image)
            put_in_place(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return OnnxEmbedder(entry)


def _model_directory(source: ModelSource) -> Path | None:
    if source.local:
        return Path(source.location)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source.location, local_files_only=True))
    except Exception:  # not downloaded yet, or huggingface_hub's own errors
        return None
