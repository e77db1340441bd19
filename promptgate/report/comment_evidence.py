"""The regression evidence under a prompt: for each of its worst examples, a line with the id and
the deltas, then a `diff` block with the baseline's output above the candidate's.

A code block keeps outputs literal with no escaping (GitHub links no mentions or issue numbers
in code, and nothing in it is HTML), and GitHub colours its `-` and `+` lines. Code does not
wrap on GitHub, so lines are wrapped here, by display width (a CJK character takes two columns),
to fit a 900-pixel comment without a scrollbar. Every line of the block starts with `-` or `+`,
so no output can close the fence.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from promptgate.report import escape
from promptgate.report.format import format_score
from promptgate.report.model import ExampleChange, PromptReport, Side

#: Columns of output per line, after the two-column `- `/`+ ` prefix: 94 columns in all, what
#: GitHub's 13.6 px monospace fits in a 900 px comment's code block.
WRAP_COLUMNS = 92


def regressions(prompt: PromptReport, shown: int, output_chars: int) -> str:
    """Up to `shown` of the prompt's top regressions, folded under one `<details>`."""
    examples = prompt.top_regressions[:shown]
    if not examples:
        return ""
    total = len(prompt.top_regressions)
    count = f"{total}" if shown >= total else f"showing {len(examples)} of {total}"
    parts = [f"<details><summary>Worst examples ({count})</summary>", ""]
    for example in examples:
        refused = prompt.refused_examples.get(example.id, {})
        parts += [_example_line(example, refused), "", _diff_block(example, output_chars), ""]
    parts.append("</details>")
    return "\n".join(parts)


def _example_line(example: ExampleChange, refused: Mapping[Side, str]) -> str:
    facts = [f"**{escape.inline(example.id, 80)}**"]
    facts += [
        f"{escape.inline(name, 40)} {format_score(name, value, signed=True)}"
        for name, value in example.metric_deltas().items()
    ]
    facts += [
        f"{side} refused ({escape.inline(why, 100)})"
        for side, why in sorted(refused.items())  # baseline before candidate
    ]
    return " · ".join(facts)


def _diff_block(example: ExampleChange, output_chars: int) -> str:
    lines = _side_lines("-", example.baseline_output, output_chars)
    lines += _side_lines("+", example.candidate_output, output_chars)
    return "\n".join(["```diff", *lines, "```"])


def _side_lines(sign: str, output: str | None, max_chars: int) -> list[str]:
    if output is None:
        return [f"{sign} (no output: the example was not run on this version)"]
    text = escape.truncate(escape.clean(output).expandtabs(4).rstrip(), max_chars)
    if not text:
        return [f"{sign} (empty answer)"]
    return [
        f"{sign} {piece}".rstrip()
        for line in text.split("\n")
        for piece in wrap_columns(line, WRAP_COLUMNS)
    ]


def width(char: str) -> int:
    """Display columns of one character: two for East Asian wide and full-width ones."""
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def wrap_columns(line: str, columns: int) -> list[str]:
    """`line` in pieces of at most `columns` display columns, broken after spaces where it can
    be, inside a word only when the word alone is too wide. An empty line stays one line."""
    pieces: list[str] = []
    current, used = "", 0
    last_space = -1  # index in `current` just after its last space
    for char in line:
        size = width(char)
        if used + size > columns and current:
            if last_space > 0 and char != " ":
                pieces.append(current[:last_space].rstrip())
                current = current[last_space:]
            else:
                pieces.append(current.rstrip())
                current = ""
            used = sum(width(c) for c in current)
            last_space = -1
            if char == " " and not current:
                continue  # a break needs no leading space on the next line
        current += char
        used += size
        if char == " ":
            last_space = len(current)
    pieces.append(current)
    return pieces
