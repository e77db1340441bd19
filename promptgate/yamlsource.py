"""YAML loading that keeps line numbers, so validation errors can point at file:line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from promptgate.errors import BadInput

M = TypeVar("M", bound=BaseModel)


class _UnreadableScalar(yaml.constructor.ConstructorError):
    """A scalar YAML resolves to a type it then cannot build, like `2024-13-01` or `!!int x`."""


class _Loader(yaml.SafeLoader):
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        # What PyYAML's constructors raise on such scalars: `2024-13-01` and `!!int 1e999999`
        # (ValueError), `!!int` with no value (IndexError), `!!bool maybe` (KeyError),
        # `!!timestamp x` (AttributeError).
        except (ValueError, OverflowError, LookupError, AttributeError, TypeError) as exc:
            value = str(node.value)
            shown = value if len(value) <= 40 else value[:40] + "..."
            kind = node.tag.rsplit(":", 1)[-1]
            why = f" ({exc})" if isinstance(exc, ValueError | OverflowError) else ""
            raise _UnreadableScalar(
                None,
                None,
                f"{shown!r} is not a valid {kind}{why}; quote it to keep it as text",
                node.start_mark,
            ) from exc


def load_yaml(text: str, source: str) -> Any:
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise _unprintable(exc, text, source) from exc
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        message = (
            problem
            if isinstance(exc, _UnreadableScalar)
            else f"not valid YAML ({problem}); fix the syntax"
        )
        raise BadInput(message, file=source, line=line) from exc
    except RecursionError as exc:
        raise BadInput(
            "YAML nested too deeply to read; flatten it",
            file=source,
            line=loader.get_mark().line + 1,
        ) from exc
    finally:
        loader.dispose()


def _unprintable(exc: yaml.reader.ReaderError, text: str, source: str) -> BadInput:
    return BadInput(
        f"character U+{exc.character:04X} is not allowed in YAML; remove it",
        file=source,
        line=text.count("\n", 0, exc.position) + 1,
    )


def line_of(text: str, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the YAML node at `loc` (or its nearest existing parent)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == key), None)
            key_node = next((k for k, _ in node.value if k.value == key), None)
            if match is None:
                return line
            line = key_node.start_mark.line + 1 if key_node is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def validate_yaml(model: type[M], text: str, source: str) -> M:
    """Parse YAML text into `model`; the first problem becomes a BadInput at its line."""
    data = load_yaml(text, source)
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise validation_error(exc, text, source) from exc


def validation_error(exc: ValidationError, text: str, source: str) -> BadInput:
    first = exc.errors()[0]
    loc = [part for part in first["loc"] if isinstance(part, int | str)]
    path = ".".join(str(part) for part in loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        message = f"unknown key '{path}'; remove it or check its spelling"
    else:
        message = f"'{path}': {first['msg']}"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return BadInput(message, file=source, line=line_of(text, loc))
