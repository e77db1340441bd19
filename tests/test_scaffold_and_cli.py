"""`promptgate init`, `config-schema`, `demo` and the CLI's exit codes, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from fresh_python import promptgate_cli as promptgate

from promptgate.config import parse_config
from promptgate.dataset import parse_dataset
from promptgate.plan import dataset_path_for
from promptgate.prompts import parse_prompt
from promptgate.scaffold import scaffold


def test_init_writes_a_config_whose_prompts_and_eval_sets_fit_together(tmp_path: Path) -> None:
    written = scaffold(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in written} >= {
        "promptgate.yaml",
        "prompts/example.txt",
        "evals/example.jsonl",
        ".github/workflows/promptgate.yml",
        ".gitignore",
    }
    config = parse_config((tmp_path / "promptgate.yaml").read_text())
    prompt = parse_prompt("prompts/example.txt", (tmp_path / "prompts/example.txt").read_text())
    dataset = dataset_path_for("prompts/example.txt", config.prompts[0].dataset or "")
    examples = parse_dataset(dataset, (tmp_path / dataset).read_text())
    assert all(prompt.render(e.vars, e.id) for e in examples)
    workflow = yaml.safe_load((tmp_path / ".github/workflows/promptgate.yml").read_text())
    assert workflow["jobs"]["gate"]["permissions"]["pull-requests"] == "write"
    assert ".promptgate/" in (tmp_path / ".gitignore").read_text()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    scaffold(tmp_path)
    result = promptgate("init", cwd=tmp_path)
    assert result.returncode == 2 and "--force" in result.stderr
    assert promptgate("init", "--force", cwd=tmp_path).returncode == 0


def test_config_schema_prints_json_schema(tmp_path: Path) -> None:
    result = promptgate("config-schema", cwd=tmp_path)
    assert result.returncode == 0
    assert "provider" in json.loads(result.stdout)["properties"]


def test_run_outside_a_repository_is_exit_2_with_what_to_do(tmp_path: Path) -> None:
    result = promptgate("run", "--repo", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "not a git repository" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_option_is_exit_2(tmp_path: Path) -> None:
    assert promptgate("run", "--bogus", cwd=tmp_path).returncode == 2


def test_the_demo_runs_the_whole_gate_offline_and_catches_its_regression(tmp_path: Path) -> None:
    result = promptgate("demo", "--directory", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo OK" in result.stdout
    report = json.loads((tmp_path / "demo/report.json").read_text())
    assert report["verdict"] == "fail"
    assert {p["path"]: p["verdict"] for p in report["prompts"]} == {
        "prompts/reply.txt": "pass",
        "prompts/summarize.prompt.yml": "fail",
    }
    assert report["mlflow"]["run_id"]
    assert (tmp_path / "demo/mlflow.db").exists()
