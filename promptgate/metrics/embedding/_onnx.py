"""A cached export run with onnxruntime and the Rust `tokenizers` library: no torch needed."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from promptgate.metrics.base import FloatArray

BATCH_SIZE = 64
#: Bump when what an entry holds, or how it is exported, changes: old entries are then ignored.
EXPORT_FORMAT = 1
#: Largest max-abs difference from `SentenceTransformer.encode` an export may have on the probes.
TOLERANCE = 1e-4
META = "meta.json"
GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"

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
SELF_CHECK = 3


class DamagedEntry(Exception):
    """A cache entry is missing a file, truncated, unreadable or gives different embeddings."""


class Embedder(Protocol):
    #: e.g. "onnxruntime:1.32.0" or "sentence-transformers:6.2.0"
    backend: str

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """One unit-length float64 row per text."""
        ...


def unit_rows(vectors: npt.ArrayLike) -> FloatArray:
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
            meta = json.loads((entry / META).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise DamagedEntry(f"{META} is unreadable ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
            raise DamagedEntry(f"{META} is not of format {EXPORT_FORMAT}")
        try:
            self._setup(entry, meta)
        except DamagedEntry:
            raise
        except Exception as exc:  # onnxruntime and tokenizers raise their own types
            raise DamagedEntry(one_line(exc)) from exc

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
        self._tokenizer = Tokenizer.from_file(str(entry / TOKENIZER))
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
        options.intra_op_num_threads = cpu_count()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no graph-optimizer chatter on stderr
        # Idle threads sleep instead of spinning: the gate's own process shares these cores, and
        # spinning was no faster here (2,000 texts on 2 cores: 3.6 s without, 3.9 s with it).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(entry / GRAPH), options, providers=["CPUExecutionProvider"]
        )
        if meta["self_check"] is None:
            return  # being exported: export() checks it against sentence-transformers
        # Catches what sizes cannot: flipped bytes in the weights, a tokenizer that changed.
        expected = np.asarray(meta["self_check"], dtype=np.float64)
        got = self._run(list(PROBE_TEXTS[:SELF_CHECK]))
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
        return unit_rows(vectors)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
