"""YAML loading that keeps line numbers, so validation errors can point at file:line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from promptgate.errors import BadInput

M = TypeVar("M", bound=BaseModel)

#: How much aliases may add to a document: characters of text plus nodes, counted as if every
#: alias were written out. Nine levels of nine aliases ("billion laughs") would add ~10^9.
MAX_ALIAS_EXPANSION = 1_000_000


class _UnreadableScalar(yaml.constructor.ConstructorError):
    """A scalar YAML resolves to a type it then cannot build, like `2024-13-01` or `!!int x`."""


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping whose keys are unique: PyYAML keeps the last of two equal keys silently,
        so a reviewer reading the first would not see what runs (YAML itself forbids them).
        Keys a merge (`<<`) brings in may be overridden, as YAML allows."""
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise _UnreadableScalar(
                    None,
                    None,
                    f"the key {key_node.value!r} appears twice (first on line {seen[key]}); "
                    "keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)

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
        node = loader.get_single_node()
        if node is None:
            return None
        _check_alias_expansion(node, source)
        return loader.construct_document(node)
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


def _check_alias_expansion(root: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases expand it by over MAX_ALIAS_EXPANSION, or refer to a node
    that contains them, before a single object is built.

    Sizes are memoised per node, so this costs one pass over the composed nodes however much
    the aliases multiply them."""
    expanded: dict[int, int] = {}
    distinct = 0
    in_progress: set[int] = set()
    pending: list[tuple[yaml.Node, bool]] = [(root, False)]
    while pending:
        node, children_done = pending.pop()
        key = id(node)
        if children_done:
            in_progress.discard(key)
            size = 1 + sum(expanded[id(child)] for child in _children(node))
            expanded[key] = size
            if size - distinct > MAX_ALIAS_EXPANSION:
                raise BadInput(
                    f"YAML aliases here expand the document to over {size:,} characters and "
                    f"nodes (an alias bomb?); at most {MAX_ALIAS_EXPANSION:,} may come from "
                    "aliases: write the values out or use fewer aliases",
                    file=source,
                    line=node.start_mark.line + 1,
                )
            continue
        if key in expanded:
            continue
        if key in in_progress:
            raise BadInput(
                "a YAML alias refers to a node that contains it; remove the recursive alias",
                file=source,
                line=node.start_mark.line + 1,
            )
        if isinstance(node, yaml.ScalarNode):
            expanded[key] = 1 + len(node.value)
            distinct += expanded[key]
            continue
        in_progress.add(key)
        distinct += 1
        pending.append((node, True))
        pending.extend((child, False) for child in _children(node))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


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
