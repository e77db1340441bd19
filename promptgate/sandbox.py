"""The Jinja2 sandbox prompts render in, with a budget: a PR's prompt is data, never code, and it
may not stall the job or exhaust its memory.

Jinja2's sandbox stops a template from reaching Python internals, but not from looping forever
or building a huge value. This one adds, per render:
- a deadline and a cap on steps (calls, filters, operators and loop iterations all count);
- a cap on every value a template builds (its size as written out, shared parts counted each
  time they appear, so nested references cannot multiply), and on the memory it allocates;
- caps on widths and counts that make text grow (`center`, `'%09999d'`, `'{:>9999}'`, ...);
- a cap on the rendered text.
Each breach raises `TemplateLimit`, which `promptgate.prompts` reports as bad input.
"""

from __future__ import annotations

import functools
import itertools
import re
import sys
import time
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    ValuesView,
)
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

#: How long one message may take to render, and how many steps it may take.
MAX_RENDER_SECONDS = 2.0
MAX_STEPS = 1_000_000
#: Largest value a template may build (characters plus items, as written out), and the largest
#: width, precision, repeat or count that makes text grow.
MAX_VALUE_SIZE = 2_000_000
MAX_WIDTH = 1_000_000
MAX_REPEAT_ITEMS = MAX_WIDTH
#: Largest integer (in bits) a template may build with `**` or `*`.
MAX_POWER_BITS = 100_000
#: Memory all values built during one render may take together (bytes, freed ones included).
MAX_ALLOCATED_BYTES = 64 * 1024 * 1024
#: Largest rendered message (characters).
MAX_MESSAGE_CHARS = 1_000_000

LIMITS_SUMMARY = (
    f"a prompt renders each message in under {MAX_RENDER_SECONDS:g} s and {MAX_STEPS:,} steps, "
    f"to at most {MAX_MESSAGE_CHARS:,} characters, building no value over "
    f"{MAX_VALUE_SIZE:,} characters or items"
)


class TemplateLimit(Exception):
    """A render went past one of its limits; the message says which."""


@dataclass
class _Budget:
    deadline: float
    steps: int = 0
    allocated: int = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimit(f"it took over {MAX_STEPS:,} steps (loops, calls and filters)")
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"it took over {MAX_RENDER_SECONDS:g} s to render")

    def charge(self, value: Any) -> None:
        self.allocated += sys.getsizeof(value)
        if self.allocated > MAX_ALLOCATED_BYTES:
            raise TemplateLimit(
                f"the values it built took over {MAX_ALLOCATED_BYTES // 2**20} MiB of memory"
            )


_BUDGET: ContextVar[_Budget | None] = ContextVar("promptgate_template_budget", default=None)


@contextmanager
def budget() -> Iterator[None]:
    """Run one render (or one compilation) under a fresh budget."""
    token = _BUDGET.set(_Budget(deadline=time.monotonic() + MAX_RENDER_SECONDS))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _tick() -> None:
    current = _BUDGET.get()
    if current is not None:
        current.tick()


def size_of(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """The value's size as written out: characters of text, plus one per item of a container,
    each shared part counted every time it appears. A container met again adds its size without
    being walked again, so the cost follows the distinct parts, not their copies; the count stops
    once past `limit` (a container is never smaller than any of its parts)."""
    known: dict[int, int] = {}
    # A walk without recursion (the template chooses the nesting depth): one frame per open
    # container, its parts still to walk and the size of those walked; the bottom frame holds
    # `value` alone.
    frames: list[tuple[Any, Iterator[Any]]] = [(None, iter((value,)))]
    totals = [0]
    while True:
        container, parts = frames[-1]
        for part in parts:
            if isinstance(part, str | bytes | bytearray):
                totals[-1] += len(part)
            elif id(part) in known:
                totals[-1] += known[id(part)]
            elif (inner := _parts(part)) is None:
                totals[-1] += 1
            else:
                frames.append((part, inner))
                totals.append(1)
                break
            if totals[-1] > limit:
                return totals[-1]
        else:
            frames.pop()
            size = totals.pop()
            if not frames:
                return size
            known[id(container)] = size
            totals[-1] += size
            if totals[-1] > limit:
                return totals[-1]


def _parts(item: Any) -> Iterator[Any] | None:
    """What a container is written out from, or None for a scalar."""
    if isinstance(item, Mapping):
        return itertools.chain(item.keys(), item.values())
    if isinstance(item, list | tuple | set | frozenset | KeysView | ItemsView | ValuesView):
        return iter(item)
    if isinstance(item, Namespace):
        return iter((object.__getattribute__(item, "_Namespace__attrs"),))
    return None


def _too_big(what: str) -> TemplateLimit:
    return TemplateLimit(f"{what} would be over {MAX_VALUE_SIZE:,} characters or items")


def _check_size(value: Any, what: str = "a value") -> None:
    if isinstance(value, str):  # the common case, without the walk
        if len(value) > MAX_VALUE_SIZE:
            raise _too_big(what)
    elif not isinstance(value, int | float | None) and size_of(value) > MAX_VALUE_SIZE:
        raise _too_big(what)


def _produced(value: Any) -> Any:
    """A value a template built: bounded in size, and charged to the render's memory."""
    if isinstance(value, int | float | None):
        return value
    _check_size(value)
    current = _BUDGET.get()
    if current is not None:
        current.charge(value)
    return value


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise TemplateLimit(f"{what} {width:,} is over {MAX_WIDTH:,}")


# -- string formatting: `%`, the `format` filter, str.format ------------------------------------

_PERCENT_SPEC = re.compile(
    r"%(?:\((?:[^()]|\([^()]*\))*\))?[-#0 +]*(?P<width>\*|\d*)(?:\.(?P<precision>\*|\d*))?[hlL]?."
    r"|%%",
    re.DOTALL,
)
_DIGITS = re.compile(r"\d+")


def _check_spec_numbers(spec: str) -> None:
    for digits in _DIGITS.findall(spec):
        if len(digits) > len(str(MAX_WIDTH)) or int(digits) > MAX_WIDTH:
            raise TemplateLimit(f"format width or precision {digits[:20]} is over {MAX_WIDTH:,}")


def check_percent_format(template: Any, values: Any) -> None:
    """Refuse a `%`-format whose widths or precisions (written, or `*` from the values) are too
    large. A spec this cannot read is refused too, so nothing unchecked is formatted."""
    if isinstance(template, bytes | bytearray):
        template = bytes(template).decode("latin-1")
    if not isinstance(template, str):
        return
    position = template.find("%")
    star = False
    while position >= 0:
        match = _PERCENT_SPEC.match(template, position)
        if match is None:
            if position == len(template) - 1:
                return  # Python refuses the incomplete format itself
            raise TemplateLimit("a %-format with a key this sandbox cannot read")
        for part in ("width", "precision"):
            number = match.group(part) or ""
            star = star or number == "*"
            if number != "*":
                _check_spec_numbers(number)
        position = template.find("%", match.end())
    if star:
        items = values.values() if isinstance(values, Mapping) else values
        for item in items if isinstance(items, tuple | list) else [items]:
            _check_width(item, "a `*` format width")


class _BoundedFormatter(SandboxedFormatter):
    """str.format as Jinja2's sandbox runs it, with each field's final spec checked (nested
    fields such as `{:{w}}` are filled in by then)."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec_numbers(format_spec)
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    """The same for Markup.format, which escapes its arguments."""


# -- str, bytes and int methods that make output grow from their arguments ---------------------


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _check_text_method(
    text: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_width(_argument(args, kwargs, 0, "width"), f"`{name}` width")
    elif name == "expandtabs":
        tabsize = _argument(args, kwargs, 0, "tabsize")
        tabsize = 8 if tabsize is None else tabsize
        tabs = text.count("\t") if isinstance(text, str) else text.count(b"\t")
        if isinstance(tabsize, int) and len(text) + tabs * tabsize > MAX_VALUE_SIZE:
            raise _too_big("expanding its tabs")
    elif name == "replace":
        _check_replace(
            text,
            args[0] if args else None,
            args[1] if len(args) > 1 else None,
            args[2] if len(args) > 2 else kwargs.get("count", -1),
        )
    elif name == "translate":
        table = args[0] if args else None
        if isinstance(table, Mapping):
            longest = max((size_of(v) for v in table.values()), default=1)
            if len(text) * max(longest, 1) > MAX_VALUE_SIZE:
                raise _too_big("translating it")


def _check_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (
        isinstance(text, str | bytes)
        and isinstance(old, str | bytes)
        and isinstance(new, str | bytes)
    ):
        return
    if len(new) <= len(old):
        return
    occurrences = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    if len(text) + occurrences * (len(new) - len(old)) > MAX_VALUE_SIZE:
        raise _too_big("the replaced text")


def _check_join(separator: Any, items: list[Any]) -> None:
    total = len(separator) * max(len(items) - 1, 0) if isinstance(separator, str | bytes) else 0
    for item in items:
        total += size_of(item)
        if total > MAX_VALUE_SIZE:
            raise _too_big("the joined text")


def _check_method_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Check a call of a growing method before it runs; returns the arguments to call with."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, str | bytes):
        if name == "join" and args:
            items = list(_bounded_iter(args[0]))
            _check_join(owner, items)
            return (items, *args[1:])
        _check_text_method(owner, name, args, kwargs)
    elif isinstance(owner, int) and name == "to_bytes":
        _check_width(_argument(args, kwargs, 0, "length"), "`to_bytes` length")
    return args


# -- filters --------------------------------------------------------------------------------


def _checked_filter_arguments(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Check a filter's growth arguments before it runs; returns the arguments to call with.
    `args` starts with the filtered value (after any environment or context Jinja2 passes)."""
    value = args[0] if args else None
    if name == "center":
        _check_width(_argument(args, kwargs, 1, "width"), "`center` width")
    elif name == "indent":
        width = _argument(args, kwargs, 1, "width")
        width = 4 if width is None else width
        per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        text = value if isinstance(value, str) else ""
        if len(text) + (text.count("\n") + 1) * per_line > MAX_VALUE_SIZE:
            raise _too_big("the indented text")
    elif name == "wordwrap":
        width = _argument(args, kwargs, 1, "width")
        wrapstring = _argument(args, kwargs, 3, "wrapstring") or "\n"
        text = value if isinstance(value, str) else ""
        lines = len(text) // max(width, 1) + text.count("\n") + 1 if isinstance(width, int) else 1
        if isinstance(wrapstring, str) and len(text) + lines * len(wrapstring) > MAX_VALUE_SIZE:
            raise _too_big("the wrapped text")
    elif name == "replace":
        _check_replace(
            value,
            _argument(args, kwargs, 1, "old"),
            _argument(args, kwargs, 2, "new"),
            _argument(args, kwargs, 3, "count"),
        )
    elif name == "join" and isinstance(value, Iterable) and not isinstance(value, str):
        items = list(_bounded_iter(value))
        _check_join(_argument(args, kwargs, 1, "d") or "", items)
        return (items, *args[1:])
    elif name == "format":
        check_percent_format(value, kwargs or args[1:])
    elif name == "batch":
        _check_width(_argument(args, kwargs, 1, "linecount"), "`batch` size")
    elif name == "slice":
        _check_width(_argument(args, kwargs, 1, "slices"), "`slice` count")
    return args


def _flat_sum(iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    """`|sum(start=[])` (a flattened list) in linear time, not Jinja2's quadratic one; None for
    any other sum, which Jinja2 does itself."""
    if attribute is not None or not isinstance(start, list | tuple):
        return None
    flat = list(start)
    for item in _bounded_iter(iterable):
        flat.extend(item)
        if len(flat) > MAX_VALUE_SIZE:
            raise _too_big("the summed list")
    return flat if isinstance(start, list) else tuple(flat)


#: Filters whose arguments can make their output grow, checked before they run.
_GROWING_FILTERS = frozenset(
    {"center", "indent", "wordwrap", "replace", "join", "format", "batch", "slice", "sum"}
)


def bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    passes_argument = hasattr(function, "jinja_pass_arg")
    grows = name in _GROWING_FILTERS

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        lead, rest = (args[:1], args[1:]) if passes_argument else ((), args)
        for argument in rest:
            _check_size(argument, f"an argument of `{name}`")
        for argument in kwargs.values():
            _check_size(argument, f"an argument of `{name}`")
        if not grows:
            return _produced(function(*lead, *rest, **kwargs))
        rest = _checked_filter_arguments(name, rest, kwargs)
        if name == "sum":
            flat = _flat_sum(*rest, **kwargs)
            if flat is not None:
                return _produced(flat)
        return _produced(function(*lead, *rest, **kwargs))

    return bounded


def _bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _tick()
        yield item


# -- the environment ------------------------------------------------------------------------


class _BoundLoops(NodeTransformer):
    """Every `for` iterates through `environment.bounded_loop`, which counts each iteration
    (a template cannot rebind `environment`); every `~` goes through `environment.bounded_concat`;
    every list, tuple or dict literal through `environment.bounded_value`, so nesting literals
    of shared parts cannot build a value whose comparison or hashing never ends."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        assert isinstance(node.iter, nodes.Expr)
        node.iter = _environment_call("bounded_loop", [node.iter], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _environment_call("bounded_concat", list(node.nodes), node.lineno)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        return self._bounded_literal(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        return self._bounded_literal(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        if node.ctx != "load":  # a target, as in `{% for a, b in pairs %}`
            return node
        return self._bounded_literal(node)

    def _bounded_literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return _environment_call("bounded_value", [node], node.lineno)


def _environment_call(name: str, arguments: list[nodes.Expr], lineno: int) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(name), arguments, [], None, None, lineno=lineno)


def _no_lipsum(*args: Any, **kwargs: Any) -> str:
    raise SecurityError("`lipsum` is not available: a prompt's text must be the same every run")


class PromptSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox (no `append` or `update`) with the budget above. `lipsum` is
    refused: random filler text has no place in a prompt, and its size is the caller's choice."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_checked_output, **options)
        self.globals["lipsum"] = _no_lipsum
        self.filters = {name: bounded_filter(name, f) for name, f in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        template = _BoundLoops().visit(super()._parse(source, name, filename))
        assert isinstance(template, nodes.Template)
        return template

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """Joins a block's output (a macro's, a `{% filter %}`'s, a `{% set %}` block's)."""
        buffered = list(parts)
        if sum(map(len, buffered)) > MAX_VALUE_SIZE:
            raise _too_big("a block's output")
        return _produced("".join(buffered))  # type: ignore[no-any-return]

    def bounded_loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        return _bounded_iter(iterable)

    def bounded_value(self, value: Any) -> Any:
        return value  # call() has checked its size

    def bounded_concat(self, *parts: Any) -> str:
        _check_join("", list(parts))
        return _produced("".join(map(str, parts)))  # type: ignore[no-any-return]

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _check_binop(operator, left, right)
        return _produced(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
        for name, argument in (*enumerate(args), *kwargs.items()):
            if name not in ("_loop_vars", "_block_vars"):  # the template's own variables
                _check_size(argument)
        args = _check_method_call(obj, args, kwargs)
        return _produced(super().call(context, obj, *args, **kwargs))

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return _produced(value) if isinstance(argument, slice) else value

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja2's sandboxed str.format / format_map, with widths and precisions bounded."""
        if super().wrap_str_format(value) is None:
            return None
        text: str = value.__self__
        formatter: _BoundedFormatter = (
            _BoundedEscapeFormatter(self, escape=text.escape)
            if isinstance(text, Markup)
            else _BoundedFormatter(self)
        )
        is_format_map = value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if not is_format_map:
                return type(text)(formatter.vformat(text, args, kwargs))
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one argument")
            return type(text)(formatter.vformat(text, (), args[0]))

        return functools.update_wrapper(bounded_format, value)


def _check_binop(operator_name: str, left: Any, right: Any) -> None:
    if operator_name == "**" and _power_too_big(left, right):
        raise TemplateLimit(f"{left!r} ** {right!r} is over {MAX_POWER_BITS:,} bits")
    if operator_name == "*" and _repeat_too_big(left, right):
        raise TemplateLimit(f"repeating a sequence over {MAX_REPEAT_ITEMS:,} items")
    if operator_name == "*" and _product_too_big(left, right):
        raise TemplateLimit(f"a product over {MAX_POWER_BITS:,} bits")
    if operator_name == "+" and _sum_too_long(left, right):
        raise _too_big("the sum")
    if operator_name == "%":
        check_percent_format(left, right)
        _check_size(right, "a %-format's values")


def _product_too_big(left: Any, right: Any) -> bool:
    if not (isinstance(left, int) and isinstance(right, int)):
        return False
    return abs(left).bit_length() + abs(right).bit_length() > MAX_POWER_BITS


def _sum_too_long(left: Any, right: Any) -> bool:
    if not (
        isinstance(left, str | bytes | list | tuple)
        and isinstance(right, str | bytes | list | tuple)
    ):
        return False
    return len(left) + len(right) > MAX_VALUE_SIZE


def _power_too_big(base: Any, exponent: Any) -> bool:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return False
    return abs(base) > 1 and exponent * max(abs(base).bit_length(), 1) > MAX_POWER_BITS


def _repeat_too_big(left: Any, right: Any) -> bool:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | bytes | list | tuple) and isinstance(count, int):
            return len(sequence) * count > MAX_REPEAT_ITEMS
    return False


def _checked_output(value: Any) -> Any:
    """Each `{{ ... }}` before it is written out: text no larger than a message may be."""
    if isinstance(value, str):
        return value
    if size_of(value, MAX_MESSAGE_CHARS) > MAX_MESSAGE_CHARS:
        raise TemplateLimit(f"a value written out would be over {MAX_MESSAGE_CHARS:,} characters")
    return value


def render_bounded(chunks: Iterator[str]) -> str:
    """Collect a template's streamed output, stopping as soon as it is too long."""
    rendered: list[str] = []
    length = 0
    for chunk in chunks:
        length += len(chunk)
        if length > MAX_MESSAGE_CHARS:
            raise TemplateLimit(f"the rendered message is over {MAX_MESSAGE_CHARS:,} characters")
        rendered.append(chunk)
    return "".join(rendered)
