"""ROUGE-L F1 (Google's rouge-score, Porter stemmer), mean over samples and examples.

rouge-score's default tokenizer keeps only [a-z0-9] after lowercasing, so text in other scripts
scores 0; use the semantic metric for such prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, ClassVar

import numpy as np

from promptgate.metrics.base import Metric, Samples, ScoredSide


class RougeL(Metric):
    name: ClassVar[str] = "rougeL"
    label: ClassVar[str] = "ROUGE-L F1 (0-1)"

    _scorer: Any = None

    def _get_scorer(self) -> Any:
        if self._scorer is None:
            from rouge_score.rouge_scorer import RougeScorer

            self._scorer = RougeScorer(["rougeL"], use_stemmer=True)
        return self._scorer

    def prepare(self) -> None:
        self._get_scorer()

    def score(self, outputs: Sequence[Sequence[str]], references: Sequence[str]) -> ScoredSide:
        samples = Samples(outputs, references)
        scorer = self._get_scorer()
        per_sample = np.array(
            [
                scorer.score(target=reference, prediction=hypothesis)["rougeL"].fmeasure
                for hypothesis, reference in zip(
                    samples.hypotheses, samples.references, strict=True
                )
            ],
            dtype=np.float64,
        )
        return ScoredSide(samples.per_example_mean(per_sample))

    @property
    def signature(self) -> str:
        return f"rouge-score:{version('rouge-score')}|rougeL|f1|stemmer:yes"
