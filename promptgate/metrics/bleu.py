"""BLEU as sacrebleu computes it: sentence BLEU per example, corpus BLEU as the headline.

Corpus BLEU is not a mean of sentence scores: it is computed once from n-gram statistics summed
over the corpus. So the side keeps each example's statistics (summed over its samples) and
aggregates any resample of examples by summing their rows, which is exactly what
`sacrebleu.corpus_bleu` would compute on that resampled corpus.

Both use sacrebleu's effective order (`eff:yes`): an n-gram order that no hypothesis has is left
out of the mean instead of counting as a precision of zero. On a corpus that has 4-grams this
changes nothing (every order is counted either way); on an eval set of labels ("positive", "no
answer") it is what keeps identical outputs at 100 rather than 0. The tokenizer is
`metrics.bleu.tokenize`; `auto` is settled per eval set from its references (languages.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from promptgate.config import MetricConfig
from promptgate.errors import BadInput, CouldNotEvaluate
from promptgate.metrics.base import FloatArray, IndexArray, Metric, ScoredSide, per_example_mean
from promptgate.metrics.languages import auto_bleu_tokenizer, script_profile

StatsArray = npt.NDArray[np.int64]

#: sacrebleu's `my_log(0)`: a precision of zero counts as this logarithm.
_LOG_OF_ZERO = -9999999999.0
#: Resamples are summed in blocks of at most this many (resample x example) counts (~16 MB).
_BLOCK_CELLS = 2_000_000


def _corpus_bleu_metric(tokenize: str = "13a") -> Any:
    """sacrebleu's BLEU with its defaults (exp smoothing, 4-grams) but effective order, as
    `sacrebleu.corpus_bleu(..., tokenize=tokenize, use_effective_order=True)` uses it."""
    from sacrebleu.metrics.bleu import BLEU

    try:
        return BLEU(tokenize=tokenize, effective_order=True)
    except ImportError as exc:  # config validation checks first; this is the installed truth
        raise BadInput(
            f"metrics.bleu.tokenize: '{tokenize}' needs a package that is not installed ({exc})"
        ) from exc
    except (OSError, SystemExit) as exc:  # an spm model not fetched (on SSL errors: sys.exit)
        raise CouldNotEvaluate(
            f"sacrebleu could not prepare the BLEU tokenizer '{tokenize}' ({exc}); the "
            "flores/spm tokenizers download their model on first use"
        ) from exc


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
            scores[start : start + len(rows)] = bleu_scores(counts.astype(np.float64) @ as_float)
        return scores


def bleu_scores(summed: FloatArray, *, effective_order: bool = True) -> FloatArray:
    """sacrebleu's BLEU of each row of statistics [hyp_len, ref_len, correct_1..4, total_1..4],
    with `BLEU()`'s defaults (exp smoothing, 4-grams) and effective order, as the corpus score
    and `sacrebleu.sentence_bleu` compute it (without it, a missing order counts as zero). All
    rows at once: the bootstrap needs thousands, and sacrebleu's per-row Python was most of its
    time. Follows `BLEU.compute_bleu` step by step; tests hold it to sacrebleu's own results.
    """
    sys_len, ref_len = summed[:, 0], summed[:, 1]
    correct, total = summed[:, 2:6], summed[:, 6:10]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shortfall = np.exp(1.0 - ref_len / sys_len)
        brevity = np.where(sys_len >= ref_len, 1.0, np.where(sys_len > 0, shortfall, 0.0))
        # An order with no n-grams ends the loop: it and every higher order keep precision 0.
        counted = np.cumprod(total > 0, axis=1).astype(bool)
        # Each order with none correct halves the smoothed precision again ("exp", mteval).
        halvings = np.cumsum(counted & (correct == 0), axis=1)
        precision = np.where(correct > 0, 100.0 * correct / total, 100.0 / (2.0**halvings * total))
        logs = np.log(np.where(counted, precision, 1.0))
    if effective_order:  # the mean over the orders counted
        logs = np.where(counted, logs, 0.0)
        orders = np.maximum(counted.sum(axis=1), 1)
    else:  # every order, a missing one as sacrebleu's log of zero
        logs = np.where(counted, logs, _LOG_OF_ZERO)
        orders = np.full(len(summed), 4)
    # Summed order by order, as sacrebleu sums its list, so the rounding is the same.
    mean_log = (((logs[:, 0] + logs[:, 1]) + logs[:, 2]) + logs[:, 3]) / orders
    scores = brevity * np.exp(mean_log)
    return np.where(correct.any(axis=1), scores, 0.0)


class Bleu(Metric):
    name: ClassVar[str] = "bleu"
    label: ClassVar[str] = "BLEU (0-100)"

    def __init__(self, config: MetricConfig) -> None:
        super().__init__(config)
        #: None while `auto` waits for an eval set's references (the gate settles it first).
        self.tokenize = None if config.tokenize in (None, "auto") else config.tokenize

    def prepare(self) -> None:
        _corpus_bleu_metric(self.tokenize or "13a")

    def score(self, outputs: Sequence[Sequence[str]], references: Sequence[str]) -> ScoredSide:
        """One eval set's scores; `auto` is settled from its references first."""
        if self.tokenize is None:
            chosen = auto_bleu_tokenizer(script_profile(references))
            settled = Bleu(self.config.model_copy(update={"tokenize": chosen}))
            return settled.score(outputs, references)
        return super().score(outputs, references)

    def score_samples(self, hypotheses: Sequence[str], references: Sequence[str]) -> FloatArray:
        """Each pair's sufficient statistics: [hyp_len, ref_len, correct_1..4, total_1..4].

        An unsettled `auto` is settled from these references (the gate settles it per eval set
        before scoring, languages.py)."""
        tokenize = self.tokenize or auto_bleu_tokenizer(script_profile(references))
        corpus_metric = _corpus_bleu_metric(tokenize)
        width = 2 + 2 * int(corpus_metric.max_ngram_order)
        if not hypotheses:
            return np.zeros((0, width), dtype=np.float64)
        stats = corpus_metric._extract_corpus_statistics(list(hypotheses), [list(references)])
        return np.asarray(stats, dtype=np.float64).reshape(-1, width)

    def side(self, rows: FloatArray, example_of: IndexArray, n_examples: int) -> BleuSide:
        per_sample_stats = np.rint(rows).astype(np.int64)  # counts, exact in float64
        # The same rows give the sentence scores (as `sacrebleu.sentence_bleu`) and, summed,
        # corpus BLEU; the score from statistics does not depend on the tokenizer.
        sentence_scores = bleu_scores(per_sample_stats.astype(np.float64))
        stats = np.zeros((n_examples, per_sample_stats.shape[1]), dtype=np.int64)
        np.add.at(stats, example_of, per_sample_stats)
        return BleuSide(
            per_example_mean(sentence_scores, example_of, n_examples),
            stats,
            _corpus_bleu_metric(),
        )

    @property
    def signature(self) -> str:
        """sacrebleu's signature of the scores (`tok:auto` until an eval set settles it)."""
        metric = _corpus_bleu_metric(self.tokenize or "13a")
        metric.num_refs = 1  # set by sacrebleu once references are read; ours is always one
        if self.tokenize is None:
            metric.tokenizer_signature = "auto"
        return str(metric.get_signature())
