import json

import pytest

from promptgate.config import config_json_schema, parse_config
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
