"""Neutralise untrusted text (LLM outputs, example text, file and branch names) for display.

Anything a PR author or a model controls must render as inert text in the sticky comment: it
must not break a table, open or close HTML, ping people (`@user`), link issues (`#123`), start
math (`$`), or hide text with bidi controls. Two shapes are offered:

- `inline` for one line: table cells, headings, list items, `<summary>`. Every character that
  Markdown or HTML could read as syntax becomes a numeric character reference, which GitHub
  renders as the literal character and never re-parses.
- `block` for multi-line text inside `<pre>` (itself inside `<details>`/`<table>`): HTML-escaped,
  so `</pre>` or `</details>` cannot close anything, and without blank lines, because a blank
  line ends a raw HTML block in CommonMark and would switch the rest back to Markdown.
- `clean` for text in a fenced code block, where nothing is syntax (comment_evidence.py makes
  sure no line can close the fence).
- `code_span` for short trusted text (shas, run ids) as inline code.

For the terminal and the CI log, `terminal` (and `terminal_model` for a whole report) shows
every control character as an escape; making a CI log's lines inert for the runner is
promptgate/github/workflow.py's part.
"""

from __future__ import annotations

import html
import re
from typing import Any, TypeVar

from pydantic import BaseModel

# GitHub links mentions and references after rendering, on the text it shows, so an entity
# would not stop them; a zero-width space after the sigil does.
ZERO_WIDTH_SPACE = "\u200b"
_REFERENCE = re.compile(r"([@#]|\bGH-)(?=[0-9A-Za-z_-])", re.IGNORECASE)

# Every character HTML or Markdown could read as syntax, as a numeric character reference.
_INLINE_ENTITIES = str.maketrans({char: f"&#{ord(char)};" for char in "&<>\"'\\`*_[]|~$!:#"})
# C0/C1 controls (except tab and newline), and bidi overrides/isolates that can make text
# read differently from what it is ("Trojan Source").
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_WHITESPACE_RUN = re.compile(r"\s+")
_BLANK_LINE = re.compile(r"^[ \t]*$", re.MULTILINE)


def truncate(text: str, max_len: int) -> str:
    """Cut `text` to `max_len` characters, saying how much was left out."""
    if max_len < 0:
        raise ValueError("max_len must be >= 0")
    if len(text) <= max_len:
        return text
    return f"{text[:max_len]}… ({len(text) - max_len} more characters)"


def clean(text: str) -> str:
    """Line endings as `\n`, with controls and bidi overrides removed: the text as it reads."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _INVISIBLE.sub("", text)


def code_span(text: str) -> str:
    """Trusted text as a code span, fenced so that backticks inside cannot end it."""
    text = " ".join(text.split())
    longest_run, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest_run = max(longest_run, run)
    fence = "`" * (longest_run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _unlink_references(text: str) -> str:
    """`@user`, `#123`, `GH-123` and `org/repo#1` shown as text, not as a ping or a link."""
    return _REFERENCE.sub(lambda m: m.group(1) + ZERO_WIDTH_SPACE, text)


def inline(text: str, max_len: int = 200) -> str:
    """One line of inert text for a table cell, heading, list item or `<summary>`.

    Newlines and runs of whitespace become one space; the result is cut to `max_len` characters
    of the original text (before escaping) with a visible marker.
    """
    flat = _WHITESPACE_RUN.sub(" ", clean(text)).strip()
    # References first: escaping introduces `&#...;`, which the reference pattern would mangle.
    return _unlink_references(truncate(flat, max_len)).translate(_INLINE_ENTITIES)


def block(text: str, max_len: int = 2000) -> str:
    """Multi-line inert text to place between `<pre>` and `</pre>`.

    Lines are kept; blank lines carry an encoded space so that an enclosing raw HTML block
    (`<table>`, `<details>`) does not end early.
    """
    cleaned = clean(text).expandtabs(4).rstrip()
    if not cleaned:
        return ""
    escaped = html.escape(_unlink_references(truncate(cleaned, max_len)), quote=False)
    return _BLANK_LINE.sub("&#32;", escaped)


# What a terminal or a CI log viewer would act on rather than show: C0 and C1 controls (ESC
# starts colour and cursor sequences, CR overwrites a line, a newline starts one that could read
# as a workflow command), line and paragraph separators, zero-width and bidi format characters.
_TERMINAL_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_CONTROLS.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def terminal(text: str) -> str:
    """Untrusted text for one line of a terminal or CI log: every control character shown as an
    escape (`\\n`, `\\x1b`, `\\u202e`), so the text can neither style, move or hide output nor
    start a new line."""
    return _TERMINAL_CONTROLS.sub(_visible, text)


M = TypeVar("M", bound=BaseModel)


def terminal_model(model: M) -> M:
    """A copy of `model` with every string in it passed through `terminal`."""
    return type(model).model_validate(_terminal_values(model.model_dump()))


def _terminal_values(value: Any) -> Any:
    if isinstance(value, str):
        return terminal(value)
    if isinstance(value, dict):
        return {_terminal_values(key): _terminal_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_terminal_values(item) for item in value]
    return value
