"""Errors are values with a place: where the input was read, and what to do about it."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    PASSED = 0
    FAILED = 1
    BAD_INPUT = 2
    COULD_NOT_EVALUATE = 3


class GateError(Exception):
    """Base of every error promptgate reports to a user; carries its exit code."""

    exit_code: ExitCode = ExitCode.COULD_NOT_EVALUATE

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __reduce__(self) -> tuple[object, ...]:
        # Raised in the scoring worker process, re-raised here: keep file and line.
        return (_rebuild, (type(self), self.message, self.file, self.line))

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        place = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{place}: {self.message}"


class BadInput(GateError):
    """Config, prompt file, eval set or arguments are wrong (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class CouldNotEvaluate(GateError):
    """The provider, git or a required store failed after retries (exit 3; never a pass)."""

    exit_code = ExitCode.COULD_NOT_EVALUATE


def _rebuild(cls: type[GateError], message: str, file: str | None, line: int | None) -> GateError:
    return cls(message, file=file, line=line)
