"""Property-based fuzzing of everything a PR can hand promptgate: config, eval sets, prompts.

The contract (DESIGN.md "Exit codes"): every input ends in a result or in `BadInput` (exit 2)
whose message starts with the file and, when the problem sits on a line, `file:line:`. Any other
exception escaping a parser fails these tests with its traceback. Templates render in Jinja2's
sandbox: a template may be refused or render harmlessly, but no code from it runs.

Reproducible in CI: every property runs with `derandomize=True` (examples derived from the test
itself, not from a random seed) and `database=None` (no local example database replays old
failures), so each run tries the same examples. The example-based tests at the end pin each
crash the fuzzing found.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from promptgate.config import Config, parse_config
from promptgate.dataset import Example, examples_from_test_data, parse_dataset
from promptgate.errors import BadInput, ExitCode
from promptgate.prompts import PromptTemplate, parse_prompt

T = TypeVar("T")

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None)

CONFIG_SOURCE = "promptgate.yaml (at base 0123456789ab)"  # as gate_config names a base config

# ---------------------------------------------------------------------------------------------
# The contract, checked on every outcome


def _last_line(text: str) -> int:
    """The highest line number a message may cite (YAML and Jinja2 also break lines at \\r)."""
    return len(text.splitlines()) + 1


def _check_bad_input(
    exc: BadInput, source: str, text: str, *, line_required: Callable[[], bool]
) -> None:
    """`line_required` is asked only when the line is missing (it may have to parse the text)."""
    assert exc.exit_code == ExitCode.BAD_INPUT
    assert exc.file == source
    assert exc.message, "a BadInput must say what is wrong"
    if exc.line is None:
        assert not line_required(), f"no line in: {exc}"
        assert str(exc).startswith(f"{source}: ")
    else:
        assert 1 <= exc.line <= _last_line(text), f"line {exc.line} is outside the file: {exc}"
        assert str(exc).startswith(f"{source}:{exc.line}: ")


def _outcome(call: Callable[[], T]) -> T | BadInput:
    """The call's result, or the BadInput it raised; any other exception propagates."""
    try:
        return call()
    except BadInput as exc:
        return exc


def _yaml_is_empty(text: str) -> bool:
    """No YAML node at all (blank or comments only): the one case with no line to cite."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader) is None
    except (yaml.YAMLError, RecursionError):
        return False


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield float(value)


def check_config(text: str) -> Config | BadInput:
    outcome = _outcome(lambda: parse_config(text, CONFIG_SOURCE))
    if isinstance(outcome, BadInput):
        _check_bad_input(
            outcome, CONFIG_SOURCE, text, line_required=lambda: not _yaml_is_empty(text)
        )
    else:
        assert isinstance(outcome, Config)
        assert outcome.prompts and outcome.metrics
        assert all(math.isfinite(n) for n in _numbers(outcome.model_dump())), outcome
    return outcome


def check_dataset(path: str, text: str) -> list[Example] | BadInput:
    outcome = _outcome(lambda: parse_dataset(path, text))
    if isinstance(outcome, BadInput):
        no_examples = outcome.message.startswith("the eval set has no examples")
        _check_bad_input(outcome, path, text, line_required=lambda: not no_examples)
    else:
        assert outcome and all(isinstance(example, Example) for example in outcome)
        ids = [example.id for example in outcome]
        assert len(set(ids)) == len(ids)
    return outcome


def _prompt_line_required(path: str, text: str, exc: BadInput) -> Callable[[], bool]:
    if exc.message.startswith("template nested too deeply"):
        return lambda: False  # Python's compiler limit: no single line to blame
    return lambda: not (path.endswith(".prompt.yml") and _yaml_is_empty(text))


def check_prompt(path: str, text: str) -> PromptTemplate | BadInput:
    outcome = _outcome(lambda: parse_prompt(path, text))
    if isinstance(outcome, BadInput):
        required = _prompt_line_required(path, text, outcome)
        _check_bad_input(outcome, path, text, line_required=required)
    return outcome


def check_render(
    prompt: PromptTemplate, variables: dict[str, Any], example_id: str
) -> tuple[Any, ...] | BadInput:
    outcome = _outcome(lambda: prompt.render(variables, example_id))
    if isinstance(outcome, BadInput):
        required = _prompt_line_required(prompt.path, prompt.text, outcome)
        _check_bad_input(outcome, prompt.path, prompt.text, line_required=required)
    else:
        assert len(outcome) == len(prompt.messages)
        for message, (role, _) in zip(outcome, prompt.messages, strict=True):
            assert message.role == role and isinstance(message.content, str)
    return outcome


# ---------------------------------------------------------------------------------------------
# Strategies

# Characters that break naive line handling or quoting, mixed into generated text.
LINE_BREAKS = "\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e\r\n"  # all of them end a str.splitlines() line
TRICKY = "\t\x00\ufeff\"'\\{}[],:#&*!|>%@-"
texts = st.text(
    st.characters() | st.sampled_from(TRICKY) | st.sampled_from(LINE_BREAKS), max_size=20
)
# Pieces of YAML syntax, including scalars YAML resolves to a type it then fails to build.
YAML_PIECES = [*":-[]{}#&*!|>'\"%@?,. \n\t", "  ", "- ", ": ", "\n  ", "? ", "~", "<<: ", "&a "]
YAML_PIECES += ["*a", "2024-13-01", "2001-02-30 10:00", "!!int ", "!!float ", "!!timestamp "]
YAML_PIECES += ["!!binary ", "!!python/name:os.system ", "0b", "0x", "0o", "1_0", ".nan", ".inf"]
YAML_PIECES += ["---\n", "...\n", "%YAML 1.1\n", "[" * 600]  # the last: past the recursion limit
yaml_pieces = st.sampled_from(YAML_PIECES)
yaml_ish_text = st.lists(yaml_pieces | st.characters(), max_size=120).map("".join)

KNOWN_KEYS = [
    *("version", "provider", "prompts", "metrics", "gate", "mlflow", "kind", "model"),
    *("path", "dataset", "max_drop", "min", "bleu", "rougeL", "semantic", "confidence"),
    *("samples", "seed", "required", "id", "vars", "expected", "examples", "messages"),
    *("role", "content", "testData", "modelParameters", "temperature", "maxTokens", "user"),
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2**63, -(2**63), 10**25]),
    st.floats(),  # NaN and infinities included
    texts,
    st.dates(),
    st.datetimes(),
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), texts, st.integers(-3, 3), st.booleans(), st.none())
structures = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
template_vars = st.dictionaries(
    st.sampled_from(["x", "text", "self", "loop", "range", "cycler", "__class__"]) | texts,
    json_values,
    max_size=4,
)


@st.composite
def dumped(draw: st.DrawFn, data: Any) -> str:
    """`data` as YAML, in block or flow style, with or without escaped unicode."""
    return yaml.safe_dump(
        data,
        allow_unicode=draw(st.booleans()),
        sort_keys=False,
        default_flow_style=draw(st.sampled_from([False, None, True])),
    )


def _slots(data: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) slot in nested dicts and lists."""
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in list(items):
        yield data, key
        if isinstance(value, dict | list):
            yield from _slots(value)


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> Any:
    """A valid document with 1-4 keys dropped, values replaced or unknown keys added."""
    data = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 4))):
        slots = list(_slots(data))
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        if action == "drop":
            del container[key]
        elif action == "replace":
            container[key] = draw(structures)
        else:
            target = container[key] if isinstance(container[key], dict) else container
            if isinstance(target, dict):
                target[draw(keys)] = draw(structures)
            else:
                target.append(draw(structures))
    return data


@st.composite
def text_edits(draw: st.DrawFn, text: str) -> str:
    """`text` with a few characters or lines inserted, deleted or duplicated."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "duplicate-line"]))
        if edit == "insert":
            inserted = "".join(draw(st.lists(yaml_pieces, min_size=1, max_size=4)))
            text = text[:at] + inserted + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 5)) :]
        else:
            lines = text.split("\n")
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(index, lines[index])
            text = "\n".join(lines)
    return text


# ---------------------------------------------------------------------------------------------
# Config

VALID_CONFIG: dict[str, Any] = {
    "version": 1,
    "provider": {
        "kind": "openai",
        "base_url": "https://api.openai.com/v1",
        "model": "gpt-4o-mini",
        "api_key_env": "OPENAI_API_KEY",
        "temperature": 0,
        "max_tokens": 256,
        "concurrency": 8,
        "timeout_s": 60,
        "max_retries": 5,
    },
    "prompts": [{"path": "prompts/summarize.txt", "dataset": "evals/summarize.jsonl"}],
    "metrics": {
        "bleu": {"max_drop": 2.0},
        "rougeL": {"max_drop": 0.02, "min": 0.1},
        "semantic": {"max_drop": 0.02, "model": "all-MiniLM-L6-v2"},
    },
    "gate": {"confidence": 0.95, "samples": 1, "bootstrap_resamples": 2000, "seed": 7},
    "mlflow": {"tracking_uri": "sqlite:///mlflow.db", "experiment": "promptgate"},
}


def test_the_valid_config_used_as_a_seed_parses() -> None:
    assert isinstance(check_config(yaml.safe_dump(VALID_CONFIG)), Config)


@FUZZ
@given(st.text(max_size=200) | yaml_ish_text)
def test_any_text_as_config_is_a_config_or_bad_input(text: str) -> None:
    check_config(text)


@FUZZ
@given(structures.flatmap(dumped))
def test_any_yaml_structure_as_config_is_a_config_or_bad_input(text: str) -> None:
    check_config(text)


@FUZZ
@given(mutated(VALID_CONFIG).flatmap(dumped))
def test_a_mutated_config_is_a_config_or_bad_input(text: str) -> None:
    check_config(text)


@FUZZ
@given(st.just(yaml.safe_dump(VALID_CONFIG, sort_keys=False)).flatmap(text_edits))
def test_a_config_with_broken_syntax_is_a_config_or_bad_input(text: str) -> None:
    check_config(text)


def _floats(low: float | None = None, high: float | None = None) -> st.SearchStrategy[float]:
    """Floats strictly outside [low, high], non-finite ones, and words that are not numbers."""
    outside = []
    if low is not None:
        outside.append(st.floats(max_value=low, exclude_max=True, allow_nan=False))
    if high is not None:
        outside.append(st.floats(min_value=high, exclude_min=True, allow_nan=False))
    return st.one_of(
        *outside, st.sampled_from([math.nan, math.inf, -math.inf]), st.sampled_from(["fast", "x"])
    )


def _ints(low: int | None = None, high: int | None = None) -> st.SearchStrategy[Any]:
    outside: list[st.SearchStrategy[Any]] = []
    if low is not None:
        outside.append(st.integers(max_value=low - 1))
    if high is not None:
        outside.append(st.integers(min_value=high + 1))
    return st.one_of(*outside, st.sampled_from([1.5, "many", [1], {"a": 1}]))


# A value at each of these paths that the schema refuses, so exactly one problem is reported.
INVALID_VALUES: dict[tuple[str | int, ...], st.SearchStrategy[Any]] = {
    ("version",): st.integers().filter(lambda v: v != 1) | st.just("one"),
    ("provider", "kind"): st.sampled_from(["azure", "OpenAI", "", 3]),
    ("provider", "temperature"): _floats(0.0, 2.0),
    ("provider", "max_tokens"): _ints(1),
    ("provider", "concurrency"): _ints(1, 256),
    ("provider", "timeout_s"): _floats(high=None) | st.floats(max_value=0.0, allow_nan=False),
    ("provider", "max_retries"): _ints(0, 20),
    ("prompts",): st.sampled_from([[], "prompts/*.txt", 3, None]),
    ("prompts", 0, "path"): st.sampled_from([None, 3, [], {"a": 1}]),
    ("metrics", "bleu", "max_drop"): _floats(0.0),
    ("metrics", "rougeL", "min"): _floats(),
    ("gate", "confidence"): _floats(0.5, 1.0) | st.just(0.5) | st.just(1.0),
    ("gate", "samples"): _ints(1, 50),
    ("gate", "bootstrap_resamples"): _ints(100, 100_000),
    ("gate", "seed"): _ints(0),
    ("mlflow", "required"): st.sampled_from([2, -1, "maybe", [True]]),
}
SENTINEL = "SENTINEL-VALUE"


def _set(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


@FUZZ
@given(
    st.sampled_from(sorted(INVALID_VALUES, key=str)).flatmap(
        lambda path: st.tuples(st.just(path), INVALID_VALUES[path])
    )
)
def test_an_invalid_value_is_bad_input_naming_its_key_and_line(
    path_and_value: tuple[tuple[str | int, ...], Any],
) -> None:
    path, value = path_and_value
    marked = copy.deepcopy(VALID_CONFIG)
    _set(marked, path, SENTINEL)
    lines = yaml.safe_dump(marked, sort_keys=False).split("\n")
    key_line = next(n for n, line in enumerate(lines, start=1) if SENTINEL in line)
    config = copy.deepcopy(VALID_CONFIG)
    _set(config, path, value)
    text = yaml.safe_dump(config, sort_keys=False)

    outcome = check_config(text)

    assert isinstance(outcome, BadInput), f"{path} = {value!r} was accepted"
    assert outcome.message.startswith(f"'{'.'.join(map(str, path))}': "), outcome.message
    assert outcome.line == key_line


@FUZZ
@given(
    st.sampled_from(["provider", "gate", "mlflow", ("metrics", "bleu"), ("prompts", 0), None]),
    st.text("abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12),
)
def test_an_unknown_key_is_bad_input_naming_it_and_its_line(
    section: str | tuple[str, int] | None, name: str
) -> None:
    config = copy.deepcopy(VALID_CONFIG)
    path = (section,) if isinstance(section, str) else section or ()
    target: Any = config
    for part in path:
        target = target[part]
    key = f"zz_{name}"
    target[key] = 1
    text = yaml.safe_dump(config, sort_keys=False)
    key_line = next(n for n, line in enumerate(text.split("\n"), start=1) if f"{key}:" in line)

    outcome = check_config(text)

    assert isinstance(outcome, BadInput)
    dotted = ".".join(str(part) for part in (*path, key))
    assert f"unknown key '{dotted}'" in outcome.message
    assert outcome.line == key_line


# ---------------------------------------------------------------------------------------------
# Eval sets


@FUZZ
@given(
    st.sampled_from(["evals/e.jsonl", "evals/e.ndjson", "evals/e.csv", "evals/e.yaml"]),
    st.text(max_size=200)
    | yaml_ish_text
    | st.binary(max_size=200).map(lambda raw: raw.decode("utf-8", "replace")),
)
def test_any_text_as_an_eval_set_is_examples_or_bad_input(path: str, text: str) -> None:
    check_dataset(path, text)


@FUZZ
@given(
    st.lists(json_values, max_size=5).map(
        lambda records: "\n".join(json.dumps(record) for record in records)
    )
)
def test_any_json_lines_are_examples_or_bad_input(text: str) -> None:
    check_dataset("evals/e.jsonl", text)


@FUZZ
@given(st.sampled_from(["evals/e.yaml", "evals/e.yml"]), structures.flatmap(dumped))
def test_any_yaml_structure_as_an_eval_set_is_examples_or_bad_input(path: str, text: str) -> None:
    check_dataset(path, text)


@FUZZ
@given(st.lists(st.lists(texts, max_size=4), max_size=5), st.sampled_from(["\r\n", "\n"]))
def test_any_csv_table_is_examples_or_bad_input(rows: list[list[str]], newline: str) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    check_dataset("evals/e.csv", buffer.getvalue())


@st.composite
def examples(draw: st.DrawFn, index: int) -> dict[str, Any]:
    # Most references hold a line-break character: the kind of content that breaks line counts.
    line_break = draw(st.sampled_from(["", *LINE_BREAKS]))
    record: dict[str, Any] = {"expected": draw(texts) + line_break + draw(texts)}
    if draw(st.booleans()):
        record["vars"] = draw(st.dictionaries(texts, json_values, max_size=3))
    if draw(st.booleans()):
        record["id"] = f"ex-{index}"
    return record


@st.composite
def broken_examples(draw: st.DrawFn, earlier_ids: list[str]) -> Any:
    """An example that must be refused, each kind on its own; never a valid one."""
    record = draw(examples(999))
    kinds = ["not-an-object", "unknown-key", "no-expected", "expected-type", "empty-id"]
    kinds += ["id-type", "vars-type"] + (["duplicate-id"] if earlier_ids else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "not-an-object":
        return draw(st.none() | st.booleans() | st.integers() | texts | st.lists(texts))
    if kind == "unknown-key":
        record[draw(texts.filter(lambda k: k not in ("id", "vars", "expected")))] = 1
    elif kind == "no-expected":
        del record["expected"]
    elif kind == "expected-type":
        record["expected"] = draw(st.none() | st.integers() | st.lists(texts) | st.booleans())
    elif kind == "empty-id":
        record["id"] = ""
    elif kind == "id-type":
        record["id"] = draw(st.none() | st.booleans() | st.lists(texts) | st.just({"a": 1}))
    elif kind == "vars-type":
        record["vars"] = draw(st.lists(texts, min_size=1) | st.integers() | texts)
    else:
        record["id"] = draw(st.sampled_from(earlier_ids))
    return record


@st.composite
def jsonl_with_one_bad_line(draw: st.DrawFn) -> tuple[str, int]:
    good = [draw(examples(index)) for index in range(draw(st.integers(0, 5)))]
    bad_at = draw(st.integers(0, len(good)))
    earlier_ids = [record["id"] for record in good[:bad_at] if "id" in record]
    ascii_only = draw(st.booleans())
    kind = draw(st.sampled_from(["record", "not-json", "truncated", "long-number", "deep"]))
    if kind == "record":
        bad = json.dumps(draw(broken_examples(earlier_ids)), ensure_ascii=ascii_only)
    elif kind == "not-json":
        bad = "@" + draw(texts).replace("\n", " ")
    elif kind == "truncated":
        bad = json.dumps(draw(examples(998)), ensure_ascii=ascii_only)[:-1]
    elif kind == "long-number":
        bad = '{"expected": "a", "vars": {"n": ' + "7" * 5000 + "}}"
    else:
        bad = '{"expected": "a", "vars": {"x": ' + "[" * 5000 + "]" * 5000 + "}}"
    lines: list[str] = []
    bad_line = 0
    for index, record in enumerate([*good[:bad_at], None, *good[bad_at:]]):
        lines += [draw(st.sampled_from(["", "  ", "\t"])) for _ in range(draw(st.integers(0, 2)))]
        lines.append(bad if record is None else json.dumps(record, ensure_ascii=ascii_only))
        if index == bad_at:
            bad_line = len(lines)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines) + draw(st.sampled_from(["", newline])), bad_line


@FUZZ
@given(jsonl_with_one_bad_line())
def test_a_bad_jsonl_line_is_reported_with_its_own_number(case: tuple[str, int]) -> None:
    text, bad_line = case
    outcome = check_dataset("evals/e.jsonl", text)
    assert isinstance(outcome, BadInput)
    assert outcome.line == bad_line, f"{outcome} (bad line is {bad_line})"


def _line_ends(text: str) -> int:
    return len(re.findall(r"\r\n|\r|\n", text))


@st.composite
def csv_with_one_bad_row(draw: st.DrawFn) -> tuple[str, int]:
    header = draw(st.permutations(["id", "expected", "text"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # "\r\n" ends rows; fields holding \r or \n are quoted
    writer.writerow(header)
    n_good = draw(st.integers(0, 4))
    bad_at = draw(st.integers(0, n_good))
    bad_line = 0
    for index in range(n_good + 1):
        row = {"id": f"ex-{index}", "expected": draw(texts), "text": draw(texts)}
        if index == bad_at:
            kinds = ["extra-fields"] + (["too-few"] if header.index("expected") > 0 else [])
            kind = draw(st.sampled_from(kinds + (["duplicate-id"] if bad_at else [])))
            if kind == "duplicate-id":
                row["id"] = f"ex-{draw(st.integers(0, bad_at - 1))}"
            fields = [row[name] for name in header]
            if kind == "extra-fields":
                fields += draw(st.lists(texts, min_size=1, max_size=2))
            elif kind == "too-few":
                fields = fields[: header.index("expected")]
                if not any(fields):
                    fields[0] = "x"  # an all-blank row would be skipped, not refused
            writer.writerow(fields)
            bad_line = _line_ends(buffer.getvalue())
        else:
            writer.writerow([row[name] for name in header])
    return buffer.getvalue(), bad_line


@FUZZ
@given(csv_with_one_bad_row())
def test_a_bad_csv_row_is_reported_at_its_line(case: tuple[str, int]) -> None:
    text, bad_line = case
    outcome = check_dataset("evals/e.csv", text)
    assert isinstance(outcome, BadInput)
    assert outcome.line == bad_line, f"{outcome} (bad row ends on line {bad_line})"


@st.composite
def yaml_with_one_bad_example(draw: st.DrawFn) -> tuple[str, int]:
    good = [draw(examples(index)) for index in range(draw(st.integers(0, 4)))]
    bad_at = draw(st.integers(0, len(good)))
    earlier_ids = [record["id"] for record in good[:bad_at] if "id" in record]
    bad = draw(broken_examples(earlier_ids))
    if isinstance(bad, dict) and draw(st.booleans()):
        bad[draw(st.integers(-3, 3) | st.booleans() | st.none())] = "a key YAML reads as no string"
    records = [*good[:bad_at], bad, *good[bad_at:]]
    data: Any = {"examples": records} if draw(st.booleans()) else records
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=draw(st.booleans()))
    entries = [n for n, line in enumerate(text.split("\n"), start=1) if line.startswith("- ")]
    return text, entries[bad_at]


@FUZZ
@given(yaml_with_one_bad_example())
def test_a_bad_yaml_example_is_reported_at_its_line(case: tuple[str, int]) -> None:
    text, bad_line = case
    outcome = check_dataset("evals/e.yaml", text)
    assert isinstance(outcome, BadInput)
    assert outcome.line == bad_line, f"{outcome} (bad example starts on line {bad_line})"


# ---------------------------------------------------------------------------------------------
# Prompts

JINJA_TOKENS = [
    *("{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", " ", "\n", "x", "text", "'a'", "0"),
    *("(", ")", "[", "]", ".", ",", "|", "~", "+", "/", "*", "**", "%", "=", "==", ":"),
    *("if", "else", "endif", "for", "in", "endfor", "set", "macro", "endmacro", "call"),
    *("endcall", "import", "include", "extends", "from", "as", "raw", "endraw", "block"),
    *("filter", "upper", "length", "attr", "format", "join", "safe", "self", "loop", "caller"),
    *("cycler", "joiner", "namespace", "lipsum", "range", "dict", "__class__", "__mro__"),
    *("__subclasses__", "__globals__", "__init__", "__builtins__", "os", "popen", "system"),
]
template_text = st.lists(st.sampled_from(JINJA_TOKENS) | texts, max_size=25).map("".join)

# Well-formed templates, so rendering (not just parsing) is exercised. Numbers stay small and
# there is no `**`: Jinja2 folds constants at compile time, so `9 ** 9 ** 9` would hang the test.
ATOMS = ["x", "text", "missing", "0", "1", "-1", "2.5", "'a'", "''", "[1, 'a']", "[]", "none"]
ATOMS += ["{'k': 1}", "true", "range(3)", "loop", "self", "cycler", "namespace()", "lipsum"]
OPERATORS = ["+", "-", "*", "/", "//", "%", "~", "==", "<", "in", "and", "or"]
FILTERS = ["upper", "int", "float", "sort", "join", "join(x)", "wordwrap(-1)", "first", "last"]
FILTERS += ["length", "attr('k')", "format(x)", "round", "batch(0)", "slice(0)", "default('d')"]
FILTERS += ["list", "sum", "max", "abs", "center(-1)", "indent", "replace('a', x)", "dictsort"]
FILTERS += ["groupby('k')", "map('upper')", "select('odd')", "tojson", "string", "e", "unique"]
TRAILERS = [".k", "['k']", "[0]", "[-1]", ".upper()", ".items()", "()", ".__class__", "(x)"]
expressions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(lambda t: f"({' '.join(t)})"),
        st.tuples(inner, st.sampled_from(FILTERS)).map(lambda t: f"({t[0]}|{t[1]})"),
        st.tuples(inner, st.sampled_from(TRAILERS)).map("".join),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        inner.map(lambda e: f"(not {e})"),
        inner.map(lambda e: "(" * 400 + e + ")" * 400),  # beyond the compiler's nesting limit
    ),
    max_leaves=6,
)
plain_text = st.text(st.characters(blacklist_characters="{}%#") | st.just("\n"), max_size=10)
templates = st.recursive(
    plain_text | expressions.map(lambda e: "{{ " + e + " }}"),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=4).map("".join),
        st.tuples(expressions, inner).map(lambda t: f"{{% if {t[0]} %}}{t[1]}{{% endif %}}"),
        st.tuples(expressions, inner).map(lambda t: f"{{% for v in {t[0]} %}}{t[1]}{{% endfor %}}"),
        st.tuples(expressions, inner).map(lambda t: f"{{% set v = {t[0]} %}}\n{t[1]}"),
        inner.map(lambda b: f"{{% macro m(a) %}}{b}{{% endmacro %}}{{{{ m(1) }}}}"),
        inner.map(lambda b: f"{{% filter upper %}}{b}{{% endfilter %}}"),
        inner.map(lambda b: "{% if 1 %}" * 25 + b + "{% endif %}" * 25),  # nesting limit again
        st.just("{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}"),
        st.sampled_from(["{% include 'a' %}", "{% import 'a' as a %}", "{% extends 'a' %}"]),
    ),
    max_leaves=5,
)
prompt_paths = st.sampled_from(["prompts/a.txt", "prompts/a.md", "prompts/a.j2", "p/a.prompt"])


@FUZZ
@given(prompt_paths, template_text | st.text(max_size=100), template_vars, texts)
def test_any_template_parses_and_renders_or_is_bad_input(
    path: str, text: str, variables: dict[str, Any], example_id: str
) -> None:
    prompt = check_prompt(path, text)
    if isinstance(prompt, PromptTemplate):
        assert prompt.messages == (("user", text),)
        check_render(prompt, variables, example_id)


@FUZZ
@given(prompt_paths, templates, template_vars)
def test_any_well_formed_template_renders_or_is_bad_input_at_its_line(
    path: str, text: str, variables: dict[str, Any]
) -> None:
    prompt = check_prompt(path, text)
    if isinstance(prompt, PromptTemplate):
        check_render(prompt, variables, "ex-1")


@FUZZ
@given(st.text(st.characters(blacklist_characters="{\r"), max_size=100), template_vars)
def test_text_without_template_markup_renders_verbatim(
    text: str, variables: dict[str, Any]
) -> None:
    prompt = parse_prompt("prompts/a.txt", text)
    assert [m.content for m in prompt.render(variables, "ex-1")] == [text]


VALID_PROMPT_YAML: dict[str, Any] = {
    "name": "Summary",
    "model": "openai/gpt-4o-mini",
    "modelParameters": {"temperature": 0.3, "maxTokens": 100},
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Summarize {{ text }}"},
    ],
    "testData": [{"text": "a long story", "expected": "a story"}],
}


def _check_prompt_yaml(text: str) -> None:
    prompt = check_prompt("prompts/s.prompt.yml", text)
    if not isinstance(prompt, PromptTemplate):
        return
    assert prompt.messages
    if prompt.test_data:
        examples = _outcome(lambda: examples_from_test_data(prompt.path, prompt.test_data or []))
        if isinstance(examples, BadInput):  # testData entries are counted, not placed on lines
            _check_bad_input(examples, prompt.path, text, line_required=lambda: False)
            assert "testData entry" in examples.message or "duplicate" in examples.message
            return
        for example in examples:
            check_render(prompt, example.vars, example.id)


@FUZZ
@given(structures.flatmap(dumped) | yaml_ish_text)
def test_any_prompt_yaml_is_a_prompt_or_bad_input(text: str) -> None:
    _check_prompt_yaml(text)


@FUZZ
@given(mutated(VALID_PROMPT_YAML).flatmap(dumped))
def test_a_mutated_prompt_yaml_is_a_prompt_or_bad_input(text: str) -> None:
    _check_prompt_yaml(text)


# The sandbox: escape attempts are refused or render harmlessly, and nothing they ask runs.
# MARKER stands for a file in a fresh directory that an escaped template would create.

CANARY = "promptgate-fuzz-canary-3f9a1c"
# What leaks into the output when a template reaches Python internals (a module, a function's
# globals, a dangerous class, the environment, a system file). Harmless look-alikes such as
# `{{ dict.x }}` -> "dict['x']" (a typing alias) are fine.
ESCAPE_SIGNS = [
    "<module ",
    "'__builtins__': ",
    "<class 'subprocess.",
    "<class 'os.",
    "<class '_io.",
    "<class 'warnings.catch_warnings'>",
    "root:x:0:0",
    CANARY,
]
SHELL = "touch MARKER"

GADGETS = ["''", "()", "[]", "{}", "x", "cycler", "joiner", "namespace", "lipsum", "range"]
GADGETS += ["self", "dict", "loop", "caller", "x.items", "'a'.format", "namespace()"]
STEPS = [
    *(".__class__", ".__mro__", ".__mro__[1]", ".__base__", ".__bases__[0]", ".mro()"),
    *(".__subclasses__()", ".__subclasses__()[-1]", ".__init__", ".__globals__", ".__dict__"),
    *(".__builtins__", "['__builtins__']", "['__import__']('os')", ".os", "['os']"),
    *(".__getattribute__('__class__')", "|attr('__class__')", "|attr('\\x5f\\x5fglobals')"),
    *("._TemplateReference__context", ".environment", "._module", ".gi_frame", ".f_globals"),
    *(".environ", f".popen('{SHELL}').read()", f".system('{SHELL}')", ".__call__"),
    *("['open']('MARKER', 'w').write('x')", ".getenv('PROMPTGATE_FUZZ_CANARY')"),
    *(".func_globals", ".__func__", ".__self__", ".__code__", ".__reduce_ex__(2)"),
]
KNOWN_PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('" + SHELL + "').read() }}",
    "{{ joiner.__init__.__globals__.os.system('" + SHELL + "') }}",
    "{{ lipsum.__globals__['os'].popen('" + SHELL + "').read() }}",
    "{{ namespace.__init__.__globals__.os.environ }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('" + SHELL + "') }}",
    "{{ self.__init__.__globals__.__builtins__['__import__']('os').system('" + SHELL + "') }}",
    "{{ x|attr('__class__')|attr('__mro__') }}",
    "{{ '{0.__class__.__mro__}'.format(x) }}",
    "{{ '%s'|format(x.__class__) }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c('" + SHELL + "', shell=True) }}"
    "{% endfor %}",
    "{% set o = lipsum|attr('__globals__') %}{{ o['os'].system('" + SHELL + "') }}",
    "{{ range.__self__ }}{{ dict.__init__.__globals__ }}",
    "{{ x.__class__.__init__.__globals__['sys'].modules['os'].system('" + SHELL + "') }}",
    "{% import 'os' as os %}{{ os.system('" + SHELL + "') }}",
    "{% include '/etc/passwd' %}",
    "{% extends 'MARKER' %}",
]


@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where an escaped template would write: its directory exists, the file must not."""
    return tmp_path_factory.mktemp("sandbox") / "pwned"


@contextmanager
def _canary_in_environment() -> Iterator[None]:
    os.environ["PROMPTGATE_FUZZ_CANARY"] = CANARY
    try:
        yield
    finally:
        del os.environ["PROMPTGATE_FUZZ_CANARY"]


def _check_no_escape(payload: str, marker: Path) -> tuple[Any, ...] | BadInput:
    text = payload.replace("MARKER", str(marker))
    with _canary_in_environment():
        prompt = check_prompt("prompts/evil.txt", text)
        rendered = (
            check_render(prompt, {"x": [1, "a"]}, "ex-1")
            if isinstance(prompt, PromptTemplate)
            else prompt
        )
    assert not marker.exists(), f"template ran code: {text}"
    if not isinstance(rendered, BadInput):
        output = "".join(message.content for message in rendered)
        assert not any(sign in output for sign in ESCAPE_SIGNS), output
    return rendered


@pytest.mark.parametrize("payload", KNOWN_PAYLOADS)
def test_known_sandbox_escapes_are_refused(payload: str, marker: Path) -> None:
    outcome = _check_no_escape(payload, marker)
    assert isinstance(outcome, BadInput)
    if "__" in payload:  # refused as unsafe, or the sandbox hid the attribute (undefined)
        assert "unsafe" in outcome.message or "no attribute" in outcome.message, outcome.message
    else:
        assert "TemplateNotFound" in outcome.message


@FUZZ
@given(
    st.sampled_from(GADGETS),
    st.lists(st.sampled_from(STEPS), min_size=1, max_size=6),
    st.sampled_from(["{{ E }}", "{% set v = E %}{{ v }}", "{% for v in [E] %}{{ v }}{% endfor %}"]),
)
def test_no_attribute_chain_escapes_the_sandbox(
    marker: Path, gadget: str, steps: list[str], shape: str
) -> None:
    _check_no_escape(shape.replace("E", gadget + "".join(steps)), marker)


# ---------------------------------------------------------------------------------------------
# Regressions: each crash the fuzzing found, pinned as an example.

MINIMAL = "version: 1\nprompts:\n  - path: prompts/a.txt\n    dataset: evals/a.jsonl\n"


def _bad(call: Callable[[], object]) -> BadInput:
    with pytest.raises(BadInput) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(
    "value",
    [
        *("2024-13-01", "0000-01-01", "9" * 5000, "!!int 0b", "!!int", "!!float fast"),
        *("!!float", "!!timestamp 2024-02-30", "!!timestamp soon", "!!bool maybe"),
    ],
)
def test_a_yaml_value_that_cannot_be_built_is_bad_input_at_its_line(value: str) -> None:
    error = _bad(lambda: parse_config(MINIMAL + f"gate:\n  seed: {value}\n", "promptgate.yaml"))
    assert str(error).startswith("promptgate.yaml:6: ") and "quote it" in error.message


def test_yaml_nested_too_deeply_is_bad_input_not_a_recursion_error() -> None:
    error = _bad(lambda: parse_config("gate:\n  seed: " + "[" * 600, "promptgate.yaml"))
    assert error.line == 2 and "nested too deeply" in error.message


def test_a_control_character_in_yaml_is_bad_input_at_its_line() -> None:
    error = _bad(lambda: parse_config(MINIMAL + "gate:\n  seed: 1\x00\n", "promptgate.yaml"))
    assert error.line == 6 and "U+0000" in error.message


@pytest.mark.parametrize(
    "setting",
    [
        "metrics:\n  bleu: {max_drop: .nan}",
        "metrics:\n  bleu: {max_drop: 1, min: .nan}",
        "provider:\n  timeout_s: .inf",
        "metrics:\n  rougeL: {max_drop: .inf}",
    ],
)
def test_a_non_finite_number_in_the_config_is_bad_input(setting: str) -> None:
    error = _bad(lambda: parse_config(MINIMAL + setting + "\n", "promptgate.yaml"))
    assert error.line is not None and error.line >= 5 and "finite" in error.message


def test_a_negative_bootstrap_seed_is_bad_input_not_a_numpy_error() -> None:
    error = _bad(lambda: parse_config(MINIMAL + "gate:\n  seed: -1\n", "promptgate.yaml"))
    assert error.line == 6 and "'gate.seed'" in error.message


def test_non_string_keys_in_a_yaml_example_are_reported_as_unknown_keys() -> None:
    error = _bad(lambda: parse_dataset("e.yaml", "- expected: a\n- {1: a, null: b, expected: c}\n"))
    assert error.line == 2 and "unknown key(s) 1, None" in error.message


def test_a_jsonl_number_beyond_the_digit_limit_is_bad_input_at_its_line() -> None:
    text = '{"expected": "a"}\n{"expected": "b", "vars": {"n": ' + "9" * 5000 + "}}\n"
    error = _bad(lambda: parse_dataset("e.jsonl", text))
    assert error.line == 2 and "write it as a string" in error.message


def test_jsonl_nested_too_deeply_is_bad_input_at_its_line() -> None:
    text = '{"expected": "a"}\n{"expected": "b", "vars": {"x": ' + "[" * 5000 + "]" * 5000 + "}}\n"
    error = _bad(lambda: parse_dataset("e.jsonl", text))
    assert error.line == 2 and "nested too deeply" in error.message


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c"])
def test_a_line_separator_inside_a_jsonl_string_does_not_split_the_line(separator: str) -> None:
    text = json.dumps({"expected": f"a{separator}b"}, ensure_ascii=False) + "\n{oops\n"
    error = _bad(lambda: parse_dataset("e.jsonl", text))
    assert error.line == 2
    assert parse_dataset("e.jsonl", text.split("\n")[0])[0].expected == f"a{separator}b"


def test_a_lone_carriage_return_in_csv_ends_a_row() -> None:
    examples = parse_dataset("e.csv", "expected,text\ra,b\rc,d\r")
    assert [(e.id, e.expected, e.vars) for e in examples] == [
        ("2", "a", {"text": "b"}),
        ("3", "c", {"text": "d"}),
    ]


def test_an_oversized_csv_field_is_bad_input_at_its_line() -> None:
    text = "expected,text\na,b\n" + "x" * 200_000 + ",c\n"
    error = _bad(lambda: parse_dataset("e.csv", text))
    assert error.line == 3 and "use JSONL" in error.message


@pytest.mark.parametrize(
    ("template", "raised"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ 'a' + 1 }}", "TypeError"),
        ("{{ [1, 'a']|sort }}", "TypeError"),
        ("{{ '%s' % (1, 2) }}", "TypeError"),
        ("{{ x|wordwrap(-1) }}", "AttributeError"),
        ("{{ range(10**9)|list }}", "OverflowError"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
    ],
)
def test_an_error_raised_while_rendering_is_bad_input_at_the_template_line(
    template: str, raised: str
) -> None:
    prompt = parse_prompt("prompts/a.txt", "intro\n\n" + template)
    error = _bad(lambda: prompt.render({"x": [1]}, "ex-3"))
    assert error.line == 3 and raised in error.message and "ex-3" in error.message


@pytest.mark.parametrize(
    "template", ["{% include 'x' %}", "{% import 'os' as os %}", "{% extends 'base.txt' %}"]
)
def test_include_import_and_extends_find_no_other_template(template: str) -> None:
    prompt = parse_prompt("prompts/a.txt", template)
    error = _bad(lambda: prompt.render({}, "ex-1"))
    assert error.line == 1 and "TemplateNotFound" in error.message


@pytest.mark.parametrize(
    "template",
    ["{% for a in x %}" * 25 + "{% endfor %}" * 25, "{{ " + "(" * 400 + "1" + ")" * 400 + " }}"],
)
def test_a_template_beyond_pythons_nesting_limits_is_bad_input(template: str) -> None:
    error = _bad(lambda: parse_prompt("prompts/a.txt", template))
    assert error.file == "prompts/a.txt" and "nested too deeply" in error.message


def test_a_variable_named_self_does_not_crash_rendering() -> None:
    prompt = parse_prompt("prompts/a.txt", "{{ text }}")
    messages = prompt.render({"self": "me", "text": "hi"}, "ex-1")
    assert messages[0].content == "hi"


def test_an_unknown_model_parameter_is_bad_input_at_its_line() -> None:
    text = "messages:\n  - role: user\n    content: hi\nmodelParameters:\n  topK: 3\n"
    error = _bad(lambda: parse_prompt("p.prompt.yml", text))
    assert error.line == 5 and "topK" in error.message
