"""Eval sets: JSON Lines (and CSV / YAML) of examples with id, vars and expected output."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from promptgate.errors import BadInput
from promptgate.yamlsource import line_of, load_yaml

ALLOWED_KEYS = "id, vars, expected"


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1)
    vars: dict[str, Any] = Field(default_factory=dict)
    expected: str


def parse_dataset(path: str, text: str) -> list[Example]:
    lowered = path.lower()
    if lowered.endswith((".jsonl", ".ndjson")):
        examples = _parse_jsonl(path, text)
    elif lowered.endswith(".csv"):
        examples = _parse_csv(path, text)
    elif lowered.endswith((".yaml", ".yml")):
        examples = _parse_yaml(path, text)
    else:
        raise BadInput("unknown eval set format; use .jsonl, .csv or .yaml", file=path)
    if not examples:
        raise BadInput("the eval set has no examples; add at least one", file=path)
    _check_unique_ids(path, examples)
    return [example for example, _ in examples]


def examples_from_test_data(
    path: str, test_data: list[dict[str, Any]], text: str | None = None
) -> list[Example]:
    """A `.prompt.yml` file's testData: each entry's keys are its vars, `expected` the reference.

    `text`, the file's YAML, lets an error name the entry's line.
    """
    examples = []
    for index, entry in enumerate(test_data, start=1):
        line = line_of(text, ["testData", index - 1]) if text is not None else None
        if "expected" not in entry:
            raise BadInput(
                f"testData entry {index} has no 'expected'; add the reference output",
                file=path,
                line=line,
            )
        variables = {k: v for k, v in entry.items() if k != "expected"}
        record = {"id": str(index), "vars": variables, "expected": entry["expected"]}
        try:
            examples.append((_example(record, path, line), index))
        except BadInput as exc:
            raise BadInput(f"testData entry {index}: {exc.message}", file=path, line=line) from exc
    _check_unique_ids(path, examples)
    return [example for example, _ in examples]


def _example(record: Any, path: str, line: int | None) -> Example:
    if not isinstance(record, dict):
        raise BadInput(
            f"expected an object with {ALLOWED_KEYS}, got {type(record).__name__}",
            file=path,
            line=line,
        )
    unknown = sorted(str(key) for key in record if key not in ("id", "vars", "expected"))
    if unknown:
        raise BadInput(
            f"unknown key(s) {', '.join(unknown)}; an example has {ALLOWED_KEYS} "
            "(put template variables under 'vars')",
            file=path,
            line=line,
        )
    if (
        "id" in record
        and isinstance(record["id"], int | float)
        and not isinstance(record["id"], bool)
    ):
        record = {**record, "id": str(record["id"])}
    try:
        return Example.model_validate(record)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "example"
        raise BadInput(f"'{where}': {first['msg']}", file=path, line=line) from exc


def _parse_jsonl(path: str, text: str) -> list[tuple[Example, int]]:
    examples = []
    # Only "\n" ends a line: str.splitlines() would also split at U+2028 and other characters
    # JSON allows unescaped inside strings.
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadInput(
                f"not valid JSON ({exc.msg} at column {exc.colno}); one JSON object per line",
                file=path,
                line=number,
            ) from exc
        except ValueError as exc:  # an integer beyond Python's digit limit
            raise BadInput(
                f"a number is too long to read ({exc}); write it as a string",
                file=path,
                line=number,
            ) from exc
        except RecursionError as exc:
            raise BadInput(
                "JSON nested too deeply to read; flatten it", file=path, line=number
            ) from exc
        if isinstance(record, dict) and "id" not in record:
            record = {**record, "id": str(number)}
        examples.append((_example(record, path, number), number))
    return examples


def _parse_csv(path: str, text: str) -> list[tuple[Example, int]]:
    # newline="" as the csv module asks, so it splits rows itself (quoted line breaks, lone "\r").
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fieldnames = reader.fieldnames
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise BadInput(
            f"not valid CSV ({exc}); check the quoting, or use JSONL for very long fields",
            file=path,
            line=max(reader.reader.line_num, 1),  # DictReader's own count lags on errors
        ) from exc
    if not fieldnames or "expected" not in fieldnames:
        raise BadInput(
            "the CSV header needs an 'expected' column; other columns become vars",
            file=path,
            line=1,
        )
    examples = []
    for number, row in rows:
        if None in row:
            raise BadInput("this row has more fields than the header", file=path, line=number)
        variables = {k: v for k, v in row.items() if k not in ("id", "expected")}
        record = {
            "id": row.get("id") or str(number),
            "vars": variables,
            "expected": row["expected"],
        }
        examples.append((_example(record, path, number), number))
    return examples


def _parse_yaml(path: str, text: str) -> list[tuple[Example, int]]:
    data = load_yaml(text, path)
    prefix: list[int | str] = []
    if isinstance(data, dict) and "examples" in data:
        data, prefix = data["examples"], ["examples"]
    if not isinstance(data, list):
        raise BadInput(
            "a YAML eval set is a list of examples (or `examples:` holding one)", file=path, line=1
        )
    examples = []
    for index, record in enumerate(data):
        line = line_of(text, [*prefix, index])
        if isinstance(record, dict) and "id" not in record:
            record = {**record, "id": str(index + 1)}
        examples.append((_example(record, path, line), line or index + 1))
    return examples


def _check_unique_ids(path: str, examples: list[tuple[Example, int]]) -> None:
    seen: dict[str, int] = {}
    for example, line in examples:
        if example.id in seen:
            raise BadInput(
                f"duplicate id '{example.id}' (first at line {seen[example.id]}); ids pair the "
                "baseline and candidate outputs, so each must be unique",
                file=path,
                line=line,
            )
        seen[example.id] = line
