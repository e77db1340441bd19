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
    reference.
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


def per_example_mean(values: FloatArray, example_of: IndexArray, n_examples: int) -> FloatArray:
    """One value per sample folded into the mean per example."""
    totals = np.bincount(example_of, weights=values, minlength=n_examples)
    counts = np.bincount(example_of, minlength=n_examples)
    return np.asarray(totals / np.maximum(counts, 1), dtype=np.float64)


class Metric(ABC):
    """A metric in two steps, so the costly one can run apart from the gate (scoring.py):
    `score_samples` turns (output, reference) pairs into rows of numbers, in any batches and any
    process; `side` folds the rows of one prompt version into its per-example scores and the
    aggregate the bootstrap resamples."""

    name: ClassVar[str]
    #: e.g. "ROUGE-L F1 (0-1)", used in reports
    label: ClassVar[str]

    def __init__(self, config: MetricConfig) -> None:
        self.config = config

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Import libraries and load models ahead of scoring."""

    @abstractmethod
    def score_samples(self, hypotheses: Sequence[str], references: Sequence[str]) -> FloatArray:
        """One row per (hypothesis, reference) pair; the columns are the metric's own."""

    def side(self, rows: FloatArray, example_of: IndexArray, n_examples: int) -> ScoredSide:
        """Rows of `score_samples` -> one version's side; by default the mean of column 0."""
        return ScoredSide(per_example_mean(rows[:, 0], example_of, n_examples))

    def score(self, outputs: Sequence[Sequence[str]], references: Sequence[str]) -> ScoredSide:
        """`outputs[i]` are the k sampled outputs for example i; `references[i]` its reference."""
        samples = Samples(outputs, references)
        rows = self.score_samples(samples.hypotheses, samples.references)
        return self.side(rows, samples.example_of, samples.n_examples)

    @property
    @abstractmethod
    def signature(self) -> str:
        """Every setting that makes the number reproducible (sacrebleu-style)."""
