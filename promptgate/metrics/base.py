"""The metric interface: per-example scores plus an aggregate over any resample of examples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from promptgate.config import MetricConfig

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


class ScoredSide:
    """One prompt version's scores on one metric.

    `per_example[i]` is example i's score (mean over its samples). `aggregate(indices)` is the
    metric's headline number over a (re)sample of examples: the mean for most metrics, corpus
    BLEU from summed sufficient statistics for BLEU. The bootstrap calls it with resampled indices.
    """

    def __init__(self, per_example: FloatArray) -> None:
        self.per_example = per_example

    def aggregate(self, indices: IndexArray | None = None) -> float:
        values = self.per_example if indices is None else self.per_example[indices]
        return float(values.mean()) if len(values) else float("nan")


class Samples:
    """Every (example, sample) pair flattened, so a metric scores one list of strings.

    `hypotheses[j]` is a sample of example `example_of[j]`; `references[j]` is that example's
    reference. `per_example_mean` folds one value per sample back into a mean per example.
    """

    def __init__(self, outputs: Sequence[Sequence[str]], references: Sequence[str]) -> None:
        if len(outputs) != len(references):
            raise ValueError(f"{len(outputs)} examples of outputs but {len(references)} references")
        empty = [i for i, samples in enumerate(outputs) if len(samples) == 0]
        if empty:
            raise ValueError(f"example {empty[0]} has no sampled outputs")
        self.n_examples = len(references)
        self.hypotheses = [text for samples in outputs for text in samples]
        self.references = [
            ref for samples, ref in zip(outputs, references, strict=True) for _ in samples
        ]
        self.example_of: IndexArray = np.repeat(
            np.arange(self.n_examples, dtype=np.intp), [len(samples) for samples in outputs]
        )

    def per_example_mean(self, per_sample: FloatArray) -> FloatArray:
        totals = np.bincount(self.example_of, weights=per_sample, minlength=self.n_examples)
        counts = np.bincount(self.example_of, minlength=self.n_examples)
        return np.asarray(totals / np.maximum(counts, 1), dtype=np.float64)


class Metric(ABC):
    name: ClassVar[str]
    #: e.g. "ROUGE-L F1 (0-1)", used in reports
    label: ClassVar[str]

    def __init__(self, config: MetricConfig) -> None:
        self.config = config

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Import libraries and load models ahead of scoring; the gate runs this in a
        background thread while generation waits on the network."""

    @abstractmethod
    def score(self, outputs: Sequence[Sequence[str]], references: Sequence[str]) -> ScoredSide:
        """`outputs[i]` are the k sampled outputs for example i; `references[i]` its reference."""

    @property
    @abstractmethod
    def signature(self) -> str:
        """Every setting that makes the number reproducible (sacrebleu-style)."""
