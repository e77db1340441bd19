"""ROUGE-L F1 (Google's rouge-score, Porter stemmer), mean over samples and examples.

rouge-score's default tokenizer keeps only [a-z0-9] after lowercasing, so text in any other
script scored 0. `AllScriptsTokenizer` keeps every script: on ASCII text its tokens are the
default tokenizer's, so English scores are unchanged.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, ClassVar

import numpy as np

from promptgate.metrics.base import FloatArray, Metric
from promptgate.metrics.languages import UNSPACED_SCRIPTS

_UNSPACED = "".join(rf"\p{{{script}}}" for script in UNSPACED_SCRIPTS)
#: A character of an unspaced script with its combining marks, or a run of letters, marks and
#: digits of any other script (a word: marks belong to it, as in Devanagari or vowelled Arabic).
TOKEN_PATTERN = rf"[{_UNSPACED}]\p{{M}}*|(?:(?![{_UNSPACED}])[\p{{L}}\p{{M}}\p{{N}}])+"
_ASCII_WORD = r"[a-z0-9]+"
#: Distinct words whose stems are remembered (about 10 MB at most).
STEM_CACHE_WORDS = 65536
#: In the signature: which tokenizer made the tokens.
TOKENIZER_NAME = "all-scripts"


class AllScriptsTokenizer:
    """rouge-score's tokenizer, for every script (a `RougeScorer(tokenizer=...)` object).

    Lowercase; split Han, kana, Thai, Lao, Khmer and Myanmar per character (as ROUGE for Chinese
    does; languages.py); keep words of letters, marks and digits in every other script; Porter-stem
    ASCII words longer than 3 characters, as rouge-score does. On ASCII text the tokens are
    exactly rouge-score's default tokenizer's: it replaces every character outside [a-z0-9] by a
    space, stems, and keeps the [a-z0-9] tokens; a word here is such a run.
    """

    def __init__(self, stemmer: Any) -> None:
        import regex

        # Porter stemming was 85 % of ROUGE-L's time, and answers repeat their words: a word
        # is stemmed once (the stem of a word never changes).
        self._stem = functools.lru_cache(maxsize=STEM_CACHE_WORDS)(stemmer.stem)
        self._token = regex.compile(TOKEN_PATTERN)
        self._ascii_word = regex.compile(_ASCII_WORD)

    def tokenize(self, text: str) -> list[str]:
        tokens = self._token.findall(text.lower())
        return [
            self._stem(token) if len(token) > 3 and self._ascii_word.fullmatch(token) else token
            for token in tokens
        ]


class RougeL(Metric):
    name: ClassVar[str] = "rougeL"
    label: ClassVar[str] = "ROUGE-L F1 (0-1)"

    _scorer: Any = None

    def _get_scorer(self) -> Any:
        if self._scorer is None:
            _import_rouge_score()
            from rouge_score.rouge_scorer import RougeScorer
            from rouge_score.tokenizers import DefaultTokenizer

            # rouge-score's own stemmer (nltk's Porter, as its default tokenizer makes it):
            # importing nltk.stem.porter here would import the whole of nltk.
            stemmer = DefaultTokenizer(use_stemmer=True)._stemmer
            self._scorer = RougeScorer(["rougeL"], tokenizer=AllScriptsTokenizer(stemmer))
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
        return f"rouge-score:{version('rouge-score')}|rougeL|f1|stemmer:yes|tok:{TOKENIZER_NAME}"


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
