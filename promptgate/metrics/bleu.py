"""BLEU as sacrebleu computes it: sentence BLEU per example, corpus BLEU as the headline.

Corpus BLEU is not a mean of sentence scores: it is computed once from n-gram statistics summed
over the corpus. So the side keeps each example's statistics (summed over its samples) and
aggregates any resample of examples by summing their rows, which is exactly what
`sacrebleu.corpus_bleu` would compute on that resampled corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from promptgate.metrics.base import FloatArray, IndexArray, Metric, ScoredSide, per_example_mean

StatsArray = npt.NDArray[np.int64]

#: Resamples are summed in blocks of at most this many (resample x example) counts (~16 MB).
_BLOCK_CELLS = 2_000_000


def _corpus_bleu_metric() -> Any:
    """sacrebleu's defaults, as `sacrebleu.corpus_bleu` uses them (13a, exp smoothing, eff:no)."""
    from sacrebleu.metrics.bleu import BLEU

    return BLEU()


class BleuSide(ScoredSide):
    """Sentence BLEU per example; `aggregate` is corpus BLEU over the chosen examples."""

    def __init__(self, per_example: FloatArray, stats: StatsArray, corpus_metric: Any) -> None:
        super().__init__(per_example)
        #: row i: example i's sufficient statistics summed over its samples
        #: [hyp_len, ref_len, correct_1..4, total_1..4]
        self.stats = stats
        self._corpus_metric = corpus_metric

    def _score(self, summed: StatsArray) -> float:
        # Python ints, as sacrebleu's own summation hands them over.
        return float(self._corpus_metric._compute_score_from_stats(summed.tolist()).score)

    def aggregate(self, indices: IndexArray | None = None) -> float:
        chosen = self.stats if indices is None else self.stats[indices]
        if len(chosen) == 0:
            return float("nan")
        return self._score(chosen.sum(axis=0))

    def aggregate_batch(self, resamples: IndexArray) -> FloatArray:
        """`aggregate` of each row of a (resamples x size) index matrix, summed in one product."""
        n_rows, size = resamples.shape
        if size == 0:
            return np.full(n_rows, np.nan)
        n_examples = len(self.stats)
        as_float = self.stats.astype(np.float64)  # exact: counts stay far below 2**53
        scores = np.empty(n_rows, dtype=np.float64)
        block = max(1, _BLOCK_CELLS // max(n_examples, 1))
        for start in range(0, n_rows, block):
            rows = resamples[start : start + block]
            offsets = np.arange(len(rows), dtype=np.intp)[:, None] * n_examples
            counts = np.bincount(
                (rows + offsets).ravel(), minlength=len(rows) * n_examples
            ).reshape(len(rows), n_examples)
            summed = np.rint(counts.astype(np.float64) @ as_float).astype(np.int64)
            for k, row in enumerate(summed):
                scores[start + k] = self._score(row)
        return scores


class Bleu(Metric):
    name: ClassVar[str] = "bleu"
    label: ClassVar[str] = "BLEU (0-100)"

    def prepare(self) -> None:
        _corpus_bleu_metric()

    def score_samples(self, hypotheses: Sequence[str], references: Sequence[str]) -> FloatArray:
        """Each pair's sufficient statistics: [hyp_len, ref_len, correct_1..4, total_1..4]."""
        corpus_metric = _corpus_bleu_metric()
        width = 2 + 2 * int(corpus_metric.max_ngram_order)
        if not hypotheses:
            return np.zeros((0, width), dtype=np.float64)
        stats = corpus_metric._extract_corpus_statistics(list(hypotheses), [list(references)])
        return np.asarray(stats, dtype=np.float64).reshape(-1, width)

    def side(self, rows: FloatArray, example_of: IndexArray, n_examples: int) -> BleuSide:
        from sacrebleu.metrics.bleu import BLEU

        corpus_metric = _corpus_bleu_metric()
        per_sample_stats = np.rint(rows).astype(np.int64)  # counts, exact in float64
        # Statistics do not depend on effective order, so the same rows give the sentence
        # scores (eff:yes, as `sacrebleu.sentence_bleu`) and corpus BLEU (eff:no).
        sentence_metric = BLEU(effective_order=True)
        sentence_scores = np.array(
            [
                sentence_metric._compute_score_from_stats(row.tolist()).score
                for row in per_sample_stats
            ],
            dtype=np.float64,
        )
        stats = np.zeros((n_examples, per_sample_stats.shape[1]), dtype=np.int64)
        np.add.at(stats, example_of, per_sample_stats)
        return BleuSide(
            per_example_mean(sentence_scores, example_of, n_examples), stats, corpus_metric
        )

    @property
    def signature(self) -> str:
        """sacrebleu's signature of the corpus score (per-example scores use eff:yes)."""
        metric = _corpus_bleu_metric()
        metric.num_refs = 1  # set by sacrebleu once references are read; ours is always one
        return str(metric.get_signature())
