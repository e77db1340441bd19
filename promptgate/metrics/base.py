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


class Metric(ABC):
    name: ClassVar[str]
    #: e.g. "ROUGE-L F1 (0-1)", used in reports
    label: ClassVar[str]

    def __init__(self, config: MetricConfig) -> None:
        self.config = config

    @abstractmethod
    def score(self, outputs: Sequence[Sequence[str]], references: Sequence[str]) -> ScoredSide:
        """`outputs[i]` are the k sampled outputs for example i; `references[i]` its reference."""

    @property
    @abstractmethod
    def signature(self) -> str:
        """Every setting that makes the number reproducible (sacrebleu-style)."""
