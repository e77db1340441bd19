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

An export can also be **installed** under the configured model name (`--prepare MODEL --install`):
an installation without the model's files or without torch and sentence-transformers (the slim
Docker image) then embeds with that export, found by name alone.

`python -m promptgate.metrics.embedding --prepare [MODEL] [--install]` exports ahead of time
(scripts/install.sh runs it, so the Docker image and `make demo` start warm).

Modules: `_source` (a configured name to its files or its installed export), `_onnx` (an export
run with onnxruntime), `_cache` (where exports live and what they are keyed by), `_export` (torch
and sentence-transformers: exporting, and the fallback embedder), `_runtime` (which embedder a
process uses, and its per-process caches).
"""

from __future__ import annotations

from promptgate.metrics.embedding._cache import cache_root
from promptgate.metrics.embedding._onnx import DamagedEntry, Embedder, OnnxEmbedder
from promptgate.metrics.embedding._runtime import embed, load_embedder
from promptgate.metrics.embedding._source import ModelSource, resolve_model

__all__ = [
    "DamagedEntry",
    "Embedder",
    "ModelSource",
    "OnnxEmbedder",
    "cache_root",
    "embed",
    "load_embedder",
    "resolve_model",
]
