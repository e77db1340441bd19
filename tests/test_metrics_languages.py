"""Metrics in any language: text in every script scores what its words say, not 0."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sacrebleu
from fresh_python import promptgate_cli
from gitrepo import RepoBuilder
from rouge_score.rouge_scorer import RougeScorer

from promptgate.config import MetricConfig, config_json_schema, parse_config
from promptgate.errors import BadInput, ExitCode
from promptgate.metrics.bleu import Bleu
from promptgate.metrics.languages import BLEU_TOKENIZERS, script_profile, settle_metrics
from promptgate.metrics.rouge import RougeL
from promptgate.report.model import Report

CONFIG = MetricConfig(max_drop=1.0)

#: One sentence per script; each is its own reference.
SENTENCES = {
    "chinese": "今天天气很好，我们下午一起去公园散步吧。",
    "japanese": "東京は日本の首都で、とても大きな都市です。",
    "korean": "오늘은 날씨가 아주 좋아서 공원에 산책하러 갑니다.",
    "arabic": "تجلس القطة على السجادة بالقرب من المدفأة الدافئة.",
    "russian": "Кошка сидит на коврике рядом с тёплой печкой.",
    "greek": "Η γάτα κάθεται στο χαλί δίπλα στη ζεστή σόμπα.",
    "hindi": "बिल्ली गर्म चूल्हे के पास चटाई पर बैठी है।",
}
#: The same sentences with about half of their words (or characters) changed.
PARTIAL = {
    "chinese": "今天天气不好，他们上午一起去学校吧。",
    "japanese": "東京は日本の古い都市で、とても静かです。",
    "korean": "오늘은 날씨가 흐려서 집에 있습니다.",
    "arabic": "تجلس القطة على الأرض بعيدا عن المدفأة.",
    "russian": "Кошка лежит на полу рядом с печкой.",
    "greek": "Η γάτα κοιμάται στο χαλί δίπλα στην πόρτα.",
    "hindi": "बिल्ली ठंडे कमरे में चटाई पर सोई है।",
}
#: rouge_score's own test-like English pairs, and those of test_metrics.py.
ENGLISH = [
    ("The cats were running home", "the cat runs home"),
    ("", "something"),
    ("policy changes expected next year", "next year the policy will change"),
    ("The quick brown fox jumps over the lazy dog.", "The quick brown fox jumped over the dog!"),
    ("Prices rose by 3% in March, analysts said.", "Analysts said prices rose 3% in March."),
    ("It's 10:30 -- don't be late (again)...", "it is ten thirty; do not be late again"),
    ("generously generalized conditional operators", "general conditions operate generously"),
]


def single(outputs: list[str]) -> list[list[str]]:
    return [[text] for text in outputs]


@pytest.mark.parametrize("language", SENTENCES)
def test_an_identical_answer_scores_the_maximum_in_every_script(language: str) -> None:
    text = SENTENCES[language]
    bleu = Bleu(CONFIG).score([[text]], [text])
    rouge = RougeL(CONFIG).score([[text]], [text])
    assert bleu.per_example.tolist() == [pytest.approx(100.0)]
    assert bleu.aggregate() == pytest.approx(100.0)
    assert rouge.per_example.tolist() == [1.0]


@pytest.mark.parametrize("language", SENTENCES)
def test_a_partial_match_scores_in_between_in_every_script(language: str) -> None:
    reference, answer = SENTENCES[language], PARTIAL[language]
    bleu = Bleu(CONFIG).score([[answer]], [reference])
    rouge = RougeL(CONFIG).score([[answer]], [reference])
    assert 0.0 < bleu.aggregate() < 100.0
    assert 0.0 < bleu.per_example[0] < 100.0
    assert 0.0 < rouge.per_example[0] < 1.0


def test_a_wrong_answer_in_another_script_scores_low_not_the_maximum() -> None:
    rouge = RougeL(CONFIG).score([[SENTENCES["russian"]]], [SENTENCES["greek"]])
    bleu = Bleu(CONFIG).score([[SENTENCES["japanese"]]], [SENTENCES["chinese"]])
    assert rouge.per_example[0] == 0.0
    assert bleu.aggregate() < 20.0


@pytest.mark.parametrize(
    "labels",
    [["positive", "negative", "neutral"], ["very positive", "not sure", "no answer given"]],
)
def test_identical_short_labels_score_the_maximum(labels: list[str]) -> None:
    """1-3 words: corpus BLEU without effective order would be 0 (no 4-grams anywhere)."""
    bleu = Bleu(CONFIG).score(single(labels), labels)
    rouge = RougeL(CONFIG).score(single(labels), labels)
    assert bleu.per_example.tolist() == pytest.approx([100.0] * len(labels))
    assert bleu.aggregate() == pytest.approx(100.0)
    assert rouge.per_example.tolist() == [1.0] * len(labels)
    # sacrebleu agrees, once told to use the orders there are.
    assert (
        bleu.aggregate() == sacrebleu.corpus_bleu(labels, [labels], use_effective_order=True).score
    )


def test_a_wrong_label_scores_below_a_right_one() -> None:
    references = ["positive", "negative", "neutral", "positive"]
    answers = ["positive", "positive", "neutral", "positive"]
    bleu = Bleu(CONFIG).score(single(answers), references)
    assert bleu.per_example.tolist() == pytest.approx([100.0, 0.0, 100.0, 100.0])
    assert 0.0 < bleu.aggregate() < 100.0


def test_english_rouge_l_is_exactly_rouge_scores_default_tokenizer() -> None:
    default = RougeScorer(["rougeL"], use_stemmer=True)
    outputs = [output for output, _ in ENGLISH]
    references = [reference for _, reference in ENGLISH]
    side = RougeL(CONFIG).score(single(outputs), references)
    expected = [default.score(r, o)["rougeL"].fmeasure for o, r in ENGLISH]
    assert side.per_example.tolist() == expected
    ours = RougeL(CONFIG)._get_scorer()._tokenizer
    for text in outputs + references:
        assert ours.tokenize(text) == default._tokenizer.tokenize(text)


def test_english_bleu_is_sacrebleus_default_13a() -> None:
    outputs = [output for output, _ in ENGLISH]
    references = [reference for _, reference in ENGLISH]
    side = Bleu(CONFIG).score(single(outputs), references)
    assert side.aggregate() == sacrebleu.corpus_bleu(outputs, [references]).score
    assert side.per_example.tolist() == [sacrebleu.sentence_bleu(o, [r]).score for o, r in ENGLISH]


def test_rouge_l_splits_chinese_and_japanese_per_character_and_keeps_words_elsewhere() -> None:
    tokenizer = RougeL(CONFIG)._get_scorer()._tokenizer
    assert tokenizer.tokenize("我们去公园") == ["我", "们", "去", "公", "园"]
    assert tokenizer.tokenize("東京は大きい") == ["東", "京", "は", "大", "き", "い"]
    assert tokenizer.tokenize("Кошка СИДИТ, 2 раза!") == ["кошка", "сидит", "2", "раза"]
    # Marks stay in their word (a virama, a vowel sign); ASCII words alone are stemmed.
    assert tokenizer.tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert tokenizer.tokenize("running 跑步 running") == ["run", "跑", "步", "run"]


def test_auto_tokenizes_bleu_per_character_for_mostly_unspaced_references_only() -> None:
    metrics = {"bleu": CONFIG, "rougeL": MetricConfig(max_drop=0.02)}
    chinese = settle_metrics(metrics, [SENTENCES["chinese"], SENTENCES["japanese"]])
    assert chinese.configs["bleu"].tokenize == "char"
    assert chinese.configs["rougeL"] == metrics["rougeL"]
    assert any("non-Latin" in note and "Han" in note for note in chinese.notes)
    for latin_or_spaced in (["the cat sat on the mat"], [SENTENCES["russian"]], [""], []):
        assert settle_metrics(metrics, latin_or_spaced).configs["bleu"].tokenize == "13a"
    assert settle_metrics(metrics, ["the cat sat on the mat"]).notes == []
    # A spaced non-Latin script keeps 13a, with a note that the text is mostly non-Latin.
    russian = settle_metrics(metrics, [SENTENCES["russian"]])
    assert any("Cyrillic" in note for note in russian.notes)
    # An explicit tokenizer is kept, and a word tokenizer on Chinese is warned about.
    fixed = settle_metrics(
        {"bleu": MetricConfig(max_drop=1, tokenize="13a")}, [SENTENCES["chinese"]]
    )
    assert fixed.configs["bleu"].tokenize == "13a"
    assert any("reads a whole unspaced sentence as one word" in note for note in fixed.notes)
    assert script_profile(["ab 中文字"]).unspaced_share == pytest.approx(3 / 5)
    assert script_profile(["ab кот 中"]).unspaced_share == pytest.approx(1 / 6)


def test_the_signature_shows_the_tokenizer() -> None:
    for tokenize in ("13a", "char", "zh", "intl"):
        signature = Bleu(MetricConfig(max_drop=1, tokenize=tokenize)).signature
        assert f"|tok:{tokenize}|" in signature
        assert "|eff:yes|" in signature
    assert RougeL(CONFIG).signature.endswith("|tok:all-scripts")


@pytest.mark.parametrize("tokenize", ["zh", "char", "intl"])
def test_a_chosen_tokenizer_gives_sacrebleus_numbers(tokenize: str) -> None:
    outputs, references = list(PARTIAL.values()), list(SENTENCES.values())
    side = Bleu(MetricConfig(max_drop=1, tokenize=tokenize)).score(single(outputs), references)
    expected = sacrebleu.corpus_bleu(
        outputs, [references], tokenize=tokenize, use_effective_order=True
    ).score
    assert side.aggregate() == pytest.approx(expected, rel=1e-12)


def test_the_config_knows_every_tokenizer_the_installed_sacrebleu_offers() -> None:
    from sacrebleu.metrics.bleu import _TOKENIZERS

    assert set(BLEU_TOKENIZERS) == {"auto", *_TOKENIZERS}
    bleu = config_json_schema()["$defs"]["MetricConfig"]["properties"]["tokenize"]  # type: ignore[index]
    assert "auto" in json.dumps(bleu) and "flores200" in json.dumps(bleu)


CONFIG_TEXT = (
    "version: 1\n"
    "prompts:\n"
    "  - path: p.txt\n"
    "    dataset: e.jsonl\n"
    "metrics:\n"
    "  bleu:\n"
    "    max_drop: 2.0\n"
    "    tokenize: {tokenize}\n"
)


def test_a_tokenizer_name_is_validated_at_its_line() -> None:
    assert parse_config(CONFIG_TEXT.format(tokenize="zh")).metrics["bleu"].tokenize == "zh"
    assert parse_config(CONFIG_TEXT.format(tokenize="auto")).metrics["bleu"].tokenize == "auto"
    with pytest.raises(BadInput) as caught:
        parse_config(CONFIG_TEXT.format(tokenize="chinese"))
    assert caught.value.line == 8
    assert "metrics.bleu.tokenize" in str(caught.value) and "'zh'" in str(caught.value)


def test_a_tokenizer_whose_package_is_missing_names_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("MeCab", "sentencepiece") else real(name, *a),
    )
    for tokenize, package in (("ja-mecab", "mecab-python3"), ("flores200", "sentencepiece")):
        with pytest.raises(BadInput) as caught:
            parse_config(CONFIG_TEXT.format(tokenize=tokenize))
        assert caught.value.line == 8
        assert package in str(caught.value) and "metrics.bleu.tokenize" in str(caught.value)


def test_only_bleu_takes_a_tokenizer() -> None:
    text = CONFIG_TEXT.format(tokenize="zh").replace("  bleu:", "  rougeL:")
    with pytest.raises(BadInput) as caught:
        parse_config(text)
    assert "metrics.rougeL.tokenize: only bleu takes a tokenizer" in str(caught.value)


def test_a_bad_tokenizer_in_the_config_is_exit_2_naming_key_and_line(tmp_path: Path) -> None:
    builder = RepoBuilder(tmp_path / "repo")
    builder.commit(
        {
            "promptgate.yaml": CONFIG_TEXT.format(tokenize="mecab"),
            "p.txt": "{{ text }}\n",
            "e.jsonl": json.dumps({"vars": {"text": "x"}, "expected": "x"}) + "\n",
        }
    )
    builder.commit({"p.txt": "Say: {{ text }}\n"})
    done = promptgate_cli("run", "--no-cache", cwd=builder.root)
    assert done.returncode == ExitCode.BAD_INPUT == 2
    said = " ".join((done.stdout + done.stderr).split())
    assert re.search(r"promptgate\.yaml \(at base \w+\):8: 'metrics\.bleu\.tokenize'", said)
    assert "'zh'" in said and "'char'" in said


def test_a_chinese_eval_set_is_scored_end_to_end(tmp_path: Path) -> None:
    """The offline provider echoes the prompt: the base prompt answers each reference exactly,
    the PR's prompt answers it behind a prefix, so its scores fall in between."""
    references = [
        SENTENCES["chinese"],
        "我们明天上午九点在会议室开会。",
        "请在周五之前提交季度报告。",
        "这家餐厅的饺子非常好吃。",
        "火车晚点了二十分钟。",
        "积极",
    ]
    builder = RepoBuilder(tmp_path / "repo")
    builder.commit(
        {
            "promptgate.yaml": (
                "version: 1\nprovider: { kind: offline, max_tokens: 64 }\n"
                "prompts:\n  - path: prompts/zh.txt\n    dataset: evals/zh.jsonl\n"
                "metrics:\n  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n"
            ),
            "prompts/zh.txt": "{{ text }}\n",
            "evals/zh.jsonl": "".join(
                json.dumps(
                    {"id": f"zh-{i}", "vars": {"text": t}, "expected": t}, ensure_ascii=False
                )
                + "\n"
                for i, t in enumerate(references)
            ),
        }
    )
    builder.branch("pr")
    builder.commit({"prompts/zh.txt": "回答：{{ text }}\n"})
    report_path = tmp_path / "report.json"
    done = promptgate_cli(
        "run",
        "--base",
        "main",
        "--head",
        "pr",
        "--no-cache",
        "--report-json",
        str(report_path),
        "--report-md",
        str(tmp_path / "report.md"),
        "--mlflow-tracking-uri",
        f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}",
        cwd=builder.root,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    report = Report.model_validate_json(report_path.read_text(encoding="utf-8"))
    prompt = report.prompts[0]
    bleu, rouge = prompt.metrics["bleu"], prompt.metrics["rougeL"]
    assert bleu.baseline == pytest.approx(100.0)
    assert rouge.baseline == pytest.approx(1.0)
    assert bleu.candidate is not None and 50.0 < bleu.candidate < 100.0
    assert rouge.candidate is not None and 0.5 < rouge.candidate < 1.0
    assert "|tok:char|" in prompt.signatures["bleu"] and "|eff:yes|" in prompt.signatures["bleu"]
    assert report.gate is not None and "|tok:char|" in report.gate.signatures["bleu"]
    assert prompt.signatures["rougeL"].endswith("|tok:all-scripts")
    assert any("non-Latin" in note and "Han" in note for note in prompt.notes)
    assert "mostly non-Latin (Han 100%)" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_each_eval_set_gets_its_own_tokenizer_in_one_run(tmp_path: Path) -> None:
    """An English and a Chinese prompt in one PR: the worker scores each with the tokenizer its
    eval set settles, each prompt's report says which, and the run's signature lists both."""
    from promptgate.gate import evaluate
    from promptgate.request import GateRequest

    english = ["the cat sat on the mat", "rain is expected by friday evening", "positive"]
    chinese = ["我们明天上午九点开会。", "火车晚点了二十分钟。", "积极"]

    def eval_set(texts: list[str]) -> str:
        return "".join(
            json.dumps({"vars": {"text": t}, "expected": t}, ensure_ascii=False) + "\n"
            for t in texts
        )

    builder = RepoBuilder(tmp_path / "repo")
    builder.commit(
        {
            "promptgate.yaml": (
                "version: 1\nprovider: { kind: offline, max_tokens: 64 }\n"
                "prompts:\n  - path: prompts/*.txt\n    dataset: evals/{stem}.jsonl\n"
                "metrics:\n  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n"
            ),
            "prompts/en.txt": "{{ text }}\n",
            "prompts/zh.txt": "{{ text }}\n",
            "evals/en.jsonl": eval_set(english),
            "evals/zh.jsonl": eval_set(chinese),
        }
    )
    builder.branch("pr")
    builder.commit({"prompts/en.txt": "{{ text }} \n", "prompts/zh.txt": "{{ text }} \n"})
    report = evaluate(
        GateRequest(repo=builder.root, base="main", head="pr", use_cache=False)
    ).report
    by_path = {prompt.path: prompt for prompt in report.prompts}
    for path, tokenizer in (("prompts/en.txt", "13a"), ("prompts/zh.txt", "char")):
        prompt = by_path[path]
        assert f"|tok:{tokenizer}|" in prompt.signatures["bleu"]
        assert prompt.metrics["bleu"].baseline == pytest.approx(100.0)
        assert prompt.metrics["bleu"].candidate == pytest.approx(100.0)
        assert prompt.metrics["rougeL"].candidate == pytest.approx(1.0)
    assert by_path["prompts/en.txt"].notes == []
    assert report.gate is not None
    assert "|tok:13a|" in report.gate.signatures["bleu"]
    assert "|tok:char|" in report.gate.signatures["bleu"]
