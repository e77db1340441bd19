"""What GitHub's runner does with a step's log: which lines it acts on as workflow commands.

A transcription of actions/runner (src/Runner.Worker/ActionCommandManager.cs and
src/Runner.Common/ActionCommand.cs, TryParseV2 and TryParse): a line is a command when, after
leading white space, it starts with `::name ...::data`, or when it holds `##[name ...]data`
anywhere; the name must be a registered command. `::stop-commands::TOKEN` makes every command
but `::TOKEN::` (which resumes) inert, for stdout and stderr alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REGISTERED = frozenset(
    {
        "add-mask",
        "add-matcher",
        "add-path",
        "debug",
        "echo",
        "endgroup",
        "error",
        "group",
        "notice",
        "remove-matcher",
        "save-state",
        "set-env",
        "set-output",
        "warning",
        "stop-commands",
    }
)
_LINES = re.compile(r"\r\n|\r|\n")  # how .NET's StreamReader.ReadLine splits


@dataclass(frozen=True)
class Command:
    name: str
    data: str
    line: str


def _parse(line: str, registered: set[str]) -> Command | None:
    trimmed = line.lstrip()
    if trimmed.startswith("::"):
        end = trimmed.find("::", 2)
        if end >= 0:
            name = trimmed[2:end].split(" ", 1)[0]
            if name.lower() in registered:
                return Command(name.lower(), trimmed[end + 2 :], line)
    # The V2 form failed; the V1 form is tried on the line as it is.
    start = line.find("##[")
    if start < 0:
        return None
    close = line.find("]", start)
    if close < 0:
        return None
    name = line[start + 3 : close].split(" ", 1)[0]
    if name.lower() not in registered:
        return None
    return Command(name.lower(), line[close + 1 :], line)


def acted_on(log: str) -> list[Command]:
    """The commands the runner would carry out (stop and resume included), in order."""
    registered = set(REGISTERED)
    stop_token: str | None = None
    commands: list[Command] = []
    for line in _LINES.split(log):
        command = _parse(line, registered)
        if command is None:
            continue
        if stop_token is not None:
            if command.name == stop_token.lower():
                registered.discard(stop_token.lower())
                stop_token = None
                commands.append(command)
            continue
        if command.name == "stop-commands":
            stop_token = command.data
            registered.add(stop_token.lower())
        commands.append(command)
    return commands
