"""`promptgate calibrate`: an A/A run of the prompts at one ref, measuring each metric's noise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_fixtures import API_KEY, API_KEY_ENV, config_yaml, jsonl
from gitrepo import RepoBuilder
from llm_stub import LLMStub
from typer.testing import CliRunner

from promptgate.calibrate import calibrate, noise_figures, round_up
from promptgate.cli import app
from promptgate.errors import CouldNotEvaluate
from promptgate.request import GateRequest

PROMPT = "{{ text }}\n"


@pytest.fixture
def noisy_stub() -> Iterator[LLMStub]:
    with LLMStub(api_key=API_KEY, sampling_noise=0.4, noise_salt="calibrate") as server:
        yield server


@pytest.fixture
def echo_stub() -> Iterator[LLMStub]:
    with LLMStub(api_key=API_KEY) as server:
        yield server


def _repo(
    root: Path, stub: LLMStub, *, temperature: float, metrics: str | None = None
) -> RepoBuilder:
    config = config_yaml(stub, root / "mlflow.db", **({"metrics": metrics} if metrics else {}))
    config = config.replace(
        "  model: stub-model\n", f"  model: stub-model\n  temperature: {temperature}\n"
    )
    builder = RepoBuilder(root / "repo")
    builder.commit(
        {
            "promptgate.yaml": config,
            "prompts/a.txt": PROMPT,
            "prompts/b.txt": "Say it again: " + PROMPT,
            "evals/a.jsonl": jsonl(),
            "evals/b.jsonl": jsonl(),
        },
        "prompts",
    )
    return builder


def _request(repo: RepoBuilder, tmp_path: Path) -> GateRequest:
    return GateRequest(
        repo=repo.root, base="HEAD", head="HEAD", cache_path=tmp_path / "cache.sqlite3"
    )


def test_deterministic_outputs_show_no_noise_and_each_side_makes_its_own_calls(
    tmp_path: Path, echo_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    repo = _repo(tmp_path, echo_stub, temperature=0)
    calibration = calibrate(_request(repo, tmp_path))
    assert [p.path for p in calibration.prompts] == ["prompts/a.txt", "prompts/b.txt"]
    # 2 prompts x 12 examples x 2 sides: the A/A halves are distinct calls, not one cached pair
    assert calibration.calls.made == 48 and echo_stub.request_count == 48
    for prompt in calibration.prompts:
        for noise in prompt.metrics.values():
            assert noise.delta == 0 and noise.standard_error == 0
            assert noise.status == "no-noise"
    again = calibrate(_request(repo, tmp_path))
    assert again.calls.made == 0 and again.calls.cached == 48


def test_sampling_noise_is_measured_and_max_drop_suggested_above_it(
    tmp_path: Path, noisy_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    # rougeL's max_drop sits far below any noise; bleu's far above it
    metrics = "  bleu: { max_drop: 90 }\n  rougeL: { max_drop: 0.0001 }\n"
    repo = _repo(tmp_path, noisy_stub, temperature=0.8, metrics=metrics)
    calibration = calibrate(_request(repo, tmp_path))
    for prompt in calibration.prompts:
        rouge, bleu = prompt.metrics["rougeL"], prompt.metrics["bleu"]
        for noise in (rouge, bleu):
            assert noise.standard_error > 0
            assert noise.ci_low <= noise.delta <= noise.ci_high
            assert noise.noise_floor < noise.suggested_max_drop
            assert noise.suggested_max_drop >= 3 * noise.standard_error
        assert rouge.status == "below-noise" and bleu.status == "ok"
    assert calibration.suggested_max_drop["rougeL"] == max(
        p.metrics["rougeL"].suggested_max_drop for p in calibration.prompts
    )


def test_the_command_prints_the_noise_and_writes_json(
    tmp_path: Path, noisy_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    repo = _repo(tmp_path, noisy_stub, temperature=0.8)
    out = tmp_path / "noise.json"
    result = CliRunner().invoke(
        app,
        ["calibrate", "--repo", str(repo.root), "--report-json", str(out),
         "--cache-path", str(tmp_path / "c.sqlite3")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    suggested = data["suggested_max_drop"]
    assert set(suggested) == {"bleu", "rougeL"} and suggested["rougeL"] > 0
    assert "Suggested metrics for promptgate.yaml" in result.output
    assert f"rougeL: {{ max_drop: {suggested['rougeL']:.3f} }}" in result.output


def test_a_provider_that_fails_gives_no_noise_figure_but_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    with LLMStub(api_key=API_KEY, fail_always=500) as failing:
        repo = _repo(tmp_path, failing, temperature=0.8)
        text = (repo.root / "promptgate.yaml").read_text()
        repo.commit({"promptgate.yaml": text.replace("max_retries: 3", "max_retries: 0")})
        with pytest.raises(CouldNotEvaluate, match="failed after retries"):
            calibrate(_request(repo, tmp_path))


def test_the_status_compares_max_drop_with_the_noise_floor_and_the_suggestion() -> None:
    def status(max_drop: float, se: float = 0.01) -> str:
        figures = noise_figures(
            "rougeL", delta=0.0, ci=(-0.02, 0.02), standard_error=se, max_drop=max_drop
        )
        assert figures.noise_floor == pytest.approx(2.326 * se)
        return figures.status

    assert status(0.02) == "below-noise"  # under 2.33 standard errors
    assert status(0.025) == "tight"  # above the floor, under the suggested 0.03
    assert status(0.03) == "ok"
    assert status(0.0, se=0.0) == "no-noise"


def test_suggestions_round_up_at_the_metrics_display_precision() -> None:
    assert round_up(0.0301, 3) == 0.031
    assert round_up(0.03, 3) == 0.03
    assert round_up(4.21, 1) == 4.3
    assert noise_figures(
        "bleu", delta=0, ci=(0, 0), standard_error=1.4, max_drop=2
    ).suggested_max_drop == pytest.approx(4.2)
