"""GitHub Actions workflow commands and files: outputs, job summary, annotations, masks, groups.

https://docs.github.com/actions/reference/workflow-commands-for-github-actions
"""

from __future__ import annotations

import io
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from promptgate.report.escape import terminal


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


class WorkflowCommands:
    """Writes workflow commands to the job log (stdout on a runner).

    After `stop_commands` the runner acts on no command in the step's output but ours: each of
    ours is written as one chunk that resumes processing with the secret token, gives the
    command and stops again under a new token (the runner's `stop-commands`, which holds for
    stdout and stderr alike). Text from a PR printed in between, however it is split into
    lines, is shown and never executed.
    """

    def __init__(self, out: TextIO) -> None:
        #: the log; anything else written to it is made inert line by line (`InertLines`)
        self.out = out if isinstance(out, InertLines) else InertLines(out)
        self._resume_token: str | None = None

    def stop_commands(self) -> None:
        """From here on, only this object's commands are acted on (until `resume_commands`)."""
        if self._resume_token is None:
            self._resume_token = secrets.token_hex(16)
            self._write(f"::stop-commands::{self._resume_token}\n")

    def resume_commands(self) -> None:
        if self._resume_token is not None:
            token, self._resume_token = self._resume_token, None
            self._write(f"::{token}::\n")

    def _write(self, text: str) -> None:
        self.out.write_trusted(text)

    def _command(self, name: str, message: str, **properties: str) -> None:
        if name != "add-mask":  # a mask must match the secret as it is
            message = terminal(message)
            properties = {key: terminal(value) for key, value in properties.items()}
        props = ",".join(f"{key}={_escape_property(value)}" for key, value in properties.items())
        line = f"::{name}{' ' + props if props else ''}::{_escape_data(message)}\n"
        if self._resume_token is None:
            self._write(line)
            return
        token, self._resume_token = self._resume_token, secrets.token_hex(16)
        self._write(f"::{token}::\n{line}::stop-commands::{self._resume_token}\n")

    def mask(self, secret: str) -> None:
        if secret:
            self._command("add-mask", secret)

    def error(self, message: str, *, file: str | None = None, title: str | None = None) -> None:
        properties = {k: v for k, v in (("file", file), ("title", title)) if v}
        self._command("error", message, **properties)

    def warning(self, message: str, *, title: str | None = None) -> None:
        self._command("warning", message, **({"title": title} if title else {}))

    def notice(self, message: str, *, title: str | None = None) -> None:
        self._command("notice", message, **({"title": title} if title else {}))

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        self._command("group", title)
        try:
            yield
        finally:
            self._command("endgroup", "")


class InertLines(io.TextIOBase):
    """A text stream for a CI log in which no line the runner reads can be a workflow command.

    The runner acts on a line that starts with `::` once leading white space is trimmed, and on
    `##[command]` anywhere in a line (ActionCommand.TryParseV2 / TryParse in actions/runner).
    Each complete line passes through `inert_line`; a partial line waits for its end (or
    `flush`), so no text from a PR can begin a line by arriving in pieces.
    """

    def __init__(self, raw: TextIO) -> None:
        super().__init__()
        self.raw = raw
        self._partial = ""
        self._mid_line = False  # a flushed partial line is on the log already

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self.raw.write(self._shown(line) + "\n")
            self._mid_line = False
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self.raw.write(self._shown(self._partial))
            self._partial, self._mid_line = "", True
        self.raw.flush()

    def _shown(self, text: str) -> str:
        return _inert_commands_anywhere(text) if self._mid_line else inert_line(text)

    def write_trusted(self, lines: str) -> None:
        """Whole lines of promptgate's own workflow commands, written as they are, on a line of
        their own, in one write."""
        end_of_partial = self._shown(self._partial) if self._partial else ""
        if self._partial or self._mid_line:
            end_of_partial += "\n"
        self._partial, self._mid_line = "", False
        self.raw.write(end_of_partial + lines)
        self.raw.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.raw, "encoding", "utf-8") or "utf-8"


def inert_line(line: str) -> str:
    """`line` as the runner will only show it: `\\::` for a leading `::`, `##\\[` for `##[`."""
    if line.lstrip().startswith("::"):
        stripped = line.lstrip()
        line = line[: len(line) - len(stripped)] + "\\" + stripped
    return _inert_commands_anywhere(line)


def _inert_commands_anywhere(text: str) -> str:
    return text.replace("##[", "##\\[")


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append step outputs to $GITHUB_OUTPUT, with a random heredoc delimiter per value so no
    value (an LLM-influenced path, a URL) can inject another output."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(
    path: Path, markdown: str | Callable[[int], str], *, max_bytes: int = 1_048_576
) -> bool:
    """Append Markdown to the step summary file, keeping the whole file within `max_bytes`.

    The runner counts the file in bytes and drops the step's entire summary, what was appended
    before included, when it is over 1 MiB (1,048,576). `markdown` may be a function that is
    given the bytes left and renders to fit them. Returns False, having written nothing, when
    the text does not fit.
    """
    try:
        used = path.stat().st_size
    except FileNotFoundError:
        used = 0
    room = max_bytes - used
    if room <= 1:
        return False
    text = markdown(room) if callable(markdown) else markdown
    data = (text.rstrip("\n") + "\n").encode("utf-8")
    if len(data) > room:
        return False
    with path.open("ab") as handle:
        handle.write(data)
    return True
