"""GitHub Actions workflow commands and files: outputs, job summary, annotations, masks, groups.

https://docs.github.com/actions/reference/workflow-commands-for-github-actions
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


class WorkflowCommands:
    """Writes workflow commands to the job log (stdout on a runner)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def _command(self, name: str, message: str, **properties: str) -> None:
        props = ",".join(f"{key}={_escape_property(value)}" for key, value in properties.items())
        self.out.write(f"::{name}{' ' + props if props else ''}::{_escape_data(message)}\n")
        self.out.flush()

    def mask(self, secret: str) -> None:
        if secret:
            self._command("add-mask", secret)

    def error(self, message: str, *, file: str | None = None, title: str | None = None) -> None:
        properties = {k: v for k, v in (("file", file), ("title", title)) if v}
        self._command("error", message, **properties)

    def warning(self, message: str, *, title: str | None = None) -> None:
        self._command("warning", message, **({"title": title} if title else {}))

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        self.out.write(f"::group::{_escape_data(title)}\n")
        self.out.flush()
        try:
            yield
        finally:
            self.out.write("::endgroup::\n")
            self.out.flush()


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append step outputs to $GITHUB_OUTPUT, with a random heredoc delimiter per value so no
    value (an LLM-influenced path, a URL) can inject another output."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(path: Path, markdown: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(markdown.rstrip("\n") + "\n")
