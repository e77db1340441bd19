import json
import re
from pathlib import Path

import pytest
import yaml

from promptgate.config import GateSettings, config_json_schema, parse_config
from promptgate.errors import BadInput, ExitCode

MINIMAL = "version: 1\nprompts:\n  - path: prompts/a.txt\n    dataset: evals/a.jsonl\n"


def test_a_minimal_config_gets_the_documented_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.provider.kind == "openai"
    assert config.gate.confidence == 0.95
    assert set(config.metrics) == {"bleu", "rougeL"}
    assert config.mlflow.required is False


def test_an_unknown_key_is_an_error_with_its_path_and_line() -> None:
    text = MINIMAL + "gate:\n  confidence: 0.9\n  sampels: 3\n"
    with pytest.raises(BadInput) as caught:
        parse_config(text, "promptgate.yaml")
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert "gate.sampels" in caught.value.message
    assert caught.value.line == 7
    assert str(caught.value).startswith("promptgate.yaml:7:")


def test_an_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(BadInput) as caught:
        parse_config(MINIMAL + "metrics:\n  bleurt: {max_drop: 1}\n")
    assert "bleurt" in caught.value.message and "rougeL" in caught.value.message


def test_broken_yaml_points_at_the_line() -> None:
    with pytest.raises(BadInput) as caught:
        parse_config("version: 1\nprompts: [\n  - a\n")
    assert caught.value.line is not None


def test_a_wrong_type_names_the_key() -> None:
    with pytest.raises(BadInput) as caught:
        parse_config(MINIMAL + "provider:\n  concurrency: lots\n")
    assert "provider.concurrency" in caught.value.message
    assert caught.value.line == 6


def test_the_json_schema_describes_every_section() -> None:
    schema = config_json_schema()
    json.dumps(schema)
    assert {"provider", "prompts", "metrics", "gate", "mlflow"} <= set(schema["properties"])


def test_each_provider_kind_gets_a_model_it_understands() -> None:
    assert (
        parse_config(MINIMAL + "provider: {kind: github-models}\n").provider.model
        == "openai/gpt-4o-mini"
    )
    assert parse_config(MINIMAL + "provider: {kind: openai}\n").provider.model == "gpt-4o-mini"


def test_a_github_models_name_without_publisher_says_how_to_write_it() -> None:
    with pytest.raises(BadInput) as caught:
        parse_config(MINIMAL + "provider: {kind: github-models, model: gpt-4o}\n")
    assert "openai/gpt-4o" in caught.value.message


# --- what a PR's config would change (shown on the PR; the base's config still governs) ------


def test_a_pr_config_that_changes_nothing_reports_no_change() -> None:
    from promptgate.gate_config import config_changes

    reordered = "prompts:\n  - dataset: evals/a.jsonl\n    path: prompts/a.txt\nversion: 1\n"
    assert config_changes(parse_config(MINIMAL), reordered, "promptgate.yaml") == []


def test_each_changed_setting_is_listed_and_loosening_ones_are_flagged() -> None:
    from promptgate.gate_config import config_changes

    base = parse_config(
        MINIMAL + "metrics:\n  bleu: { max_drop: 2.0, min: 10 }\n  rougeL: { max_drop: 0.02 }\n"
    )
    head = MINIMAL.replace("evals/a.jsonl", "evals/b.jsonl") + (
        "metrics:\n  bleu: { max_drop: 5.0, min: 5 }\n"
        "gate:\n  confidence: 0.99\n  samples: 3\n"
        "provider:\n  temperature: 0.5\n"
    )
    changes = {c.setting: c for c in config_changes(base, head, "promptgate.yaml")}
    assert set(changes) == {
        "prompts[0].dataset",
        "metrics.bleu.max_drop",
        "metrics.bleu.min",
        "metrics.rougeL.max_drop",
        "gate.confidence",
        "gate.samples",
        "provider.temperature",
    }
    assert (changes["metrics.bleu.max_drop"].base, changes["metrics.bleu.max_drop"].head) == (
        2.0,
        5.0,
    )
    assert changes["metrics.rougeL.max_drop"].head is None  # the metric is dropped
    loosening = {name for name, change in changes.items() if change.loosens}
    assert loosening == {
        "metrics.bleu.max_drop",
        "metrics.bleu.min",
        "metrics.rougeL.max_drop",
        "gate.confidence",
    }


def test_a_pr_config_that_does_not_parse_or_is_deleted_is_a_change() -> None:
    from promptgate.gate_config import config_changes

    base = parse_config(MINIMAL)
    (broken,) = config_changes(base, "version: 1\nprompts: [\n", "promptgate.yaml")
    assert broken.setting == "promptgate.yaml" and str(broken.head).startswith("invalid: ")
    (deleted,) = config_changes(base, None, "promptgate.yaml")
    assert deleted.head == "deleted by this PR"


def test_a_lower_error_rate_loosens_the_gate_and_a_higher_one_does_not() -> None:
    from promptgate.gate_config import config_changes

    base = parse_config(MINIMAL + "gate:\n  error_rate: 0.01\n")
    for head_rate, loosens in ((0.001, True), (0.05, False)):
        head = MINIMAL + f"gate:\n  error_rate: {head_rate}\n"
        [change] = config_changes(base, head, "promptgate.yaml")
        assert (change.setting, change.loosens) == ("gate.error_rate", loosens)


def test_the_readme_configuration_reference_states_the_gate_defaults_the_code_uses() -> None:
    """People copy the README's reference: every gate setting it shows is the code's default."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration: `promptgate.yaml`", 1)[1]
    block = re.search(r"^```yaml\n(.*?)^```$", section, re.S | re.M)
    assert block is not None
    shown = yaml.safe_load(block.group(1))["gate"]
    defaults = GateSettings().model_dump()
    assert shown and {name: defaults[name] for name in shown} == shown
