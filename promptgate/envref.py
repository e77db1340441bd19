"""`${NAME}` references to environment variables in a config value (`provider.headers`).

A value is literal text with references in it: `Bearer ${GATEWAY_TOKEN}`. A `$` not followed by
`{` is text. What a reference stands for is a secret: it is read when the provider starts,
masked in the Action's log, and never written to a report, the cache or MLflow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from promptgate.errors import BadInput

_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Characters no header value may hold: they would end the header (or the request) early.
_BREAKS_A_HEADER = re.compile(r"[\r\n\0]")


def template_error(value: str) -> str | None:
    """What is wrong with `value` as a template, or None."""
    for match in _REFERENCE.finditer(value):
        if not _NAME.fullmatch(match.group(1)):
            return f"${{{match.group(1)}}} is not a variable name (letters, digits, _)"
    if "${" in _REFERENCE.sub("", value):
        return "a ${ has no closing }"
    if _BREAKS_A_HEADER.search(value):
        return "a line break or NUL cannot be part of a header value"
    return None


def references(value: str) -> list[str]:
    return [match.group(1) for match in _REFERENCE.finditer(value)]


def resolve(value: str, env: Mapping[str, str], *, where: str) -> tuple[str, list[str]]:
    """`value` with each reference replaced, and the secrets that went into it. A variable that
    is unset or empty, or whose value would break the header, is BadInput naming it, never its
    value."""
    secrets = []
    for name in references(value):
        secret = env.get(name, "")
        if not secret.strip():
            raise BadInput(f"{where} uses ${{{name}}}, which is not set: set the variable {name}")
        if _BREAKS_A_HEADER.search(secret):
            raise BadInput(
                f"{where} uses ${{{name}}}, whose value holds a line break or NUL: a header "
                "cannot carry it"
            )
        secrets.append(secret)
    resolved = _REFERENCE.sub(lambda match: env[match.group(1)], value)
    return resolved, secrets
