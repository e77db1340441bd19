"""ROUGE-L F1 (Google's rouge-score, Porter stemmer), mean over samples and examples.

rouge-score's default tokenizer keeps only [a-z0-9] after lowercasing, so text in other scripts
scores 0; use the semantic metric for such prompts.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, ClassVar

import numpy as np

from promptgate.metrics.base import FloatArray, Metric


class RougeL(Metric):
    name: ClassVar[str] = "rougeL"
    label: ClassVar[str] = "ROUGE-L F1 (0-1)"

    _scorer: Any = None

    def _get_scorer(self) -> Any:
        if self._scorer is None:
            _import_rouge_score()
            from rouge_score.rouge_scorer import RougeScorer

            self._scorer = RougeScorer(["rougeL"], use_stemmer=True)
        return self._scorer

    def prepare(self) -> None:
        self._get_scorer()

    def score_samples(self, hypotheses: Sequence[str], references: Sequence[str]) -> FloatArray:
        scorer = self._get_scorer()
        return np.array(
            [
                [scorer.score(target=reference, prediction=hypothesis)["rougeL"].fmeasure]
                for hypothesis, reference in zip(hypotheses, references, strict=True)
            ],
            dtype=np.float64,
        ).reshape(-1, 1)

    @property
    def signature(self) -> str:
        return f"rouge-score:{version('rouge-score')}|rougeL|f1|stemmer:yes"


def _import_rouge_score() -> None:
    """Import rouge-score with nltk's Porter stemmer alone, not the whole of nltk.

    rouge-score needs only `nltk.stem.porter`, but importing it runs `nltk/__init__.py` and
    `nltk/stem/__init__.py`, which pull in scipy.stats, the corpora and every other stemmer:
    2.6 s of CPU against 0.2 s, on every gate run. So both packages are stood in for by empty
    package modules on nltk's own path while rouge-score imports; the stand-ins are removed
    afterwards, so a later `import nltk` anywhere is the real, complete one, and the Porter
    module loaded here is the same file it would load. Any failure: the ordinary import.
    (rouge_scorer's own `nltk` name stays the stand-in; only rougeLsum's sentence splitting
    would use it, and promptgate scores rougeL.)
    """
    if "rouge_score.rouge_scorer" in sys.modules or "nltk" in sys.modules:
        return
    spec = importlib.util.find_spec("nltk")
    if spec is None or not spec.submodule_search_locations:
        return
    root = next(iter(spec.submodule_search_locations))
    stand_ins = {"nltk": root, "nltk.stem": os.path.join(root, "stem")}
    for name, path in stand_ins.items():
        package = types.ModuleType(name)
        package.__path__ = [path]
        sys.modules[name] = package
    try:
        import rouge_score.rouge_scorer  # noqa: F401 - binds nltk.stem.porter
    except ImportError:
        for partial in ("rouge_score.rouge_scorer", "rouge_score.tokenizers"):
            sys.modules.pop(partial, None)
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)
