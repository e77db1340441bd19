"""Prompt files: plain Jinja2 templates and GitHub Models `.prompt.yml` files.

Templates render in Jinja2's sandbox with StrictUndefined: a PR's prompt is data, never code,
and a missing variable is an error rather than a silently blank prompt.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Any, Literal

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

from promptgate.errors import BadInput
from promptgate.providers.base import ChatMessage
from promptgate.yamlsource import validate_yaml

PROMPT_YAML_SUFFIXES = (".prompt.yml", ".prompt.yaml")
Role = Literal["system", "user", "assistant", "developer"]

_ENVIRONMENT = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
)


def is_prompt_yaml(path: str) -> bool:
    return path.endswith(PROMPT_YAML_SUFFIXES)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _PromptYamlMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str


class _PromptYaml(BaseModel):
    """The GitHub Models prompt file format (fields we use; others are tolerated)."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None
    description: str | None = None
    model: str | None = None
    modelParameters: dict[str, float | int | str | bool] = Field(default_factory=dict)
    messages: list[_PromptYamlMessage] = Field(min_length=1)
    testData: list[dict[str, Any]] | None = None


# GitHub Models' camelCase parameters -> chat-completions fields.
_PARAMETER_NAMES = {
    "maxTokens": "max_tokens",
    "maxCompletionTokens": "max_tokens",
    "temperature": "temperature",
    "topP": "top_p",
    "stop": "stop",
    "frequencyPenalty": "frequency_penalty",
    "presencePenalty": "presence_penalty",
    "seed": "seed",
}


class PromptTemplate(BaseModel):
    """A parsed prompt file: message templates plus the model settings the file itself pins."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    path: str
    text: str
    messages: tuple[tuple[Role, str], ...]
    model: str | None = None
    parameters: dict[str, float | int | str | bool] = Field(default_factory=dict)
    test_data: list[dict[str, Any]] | None = None

    @property
    def hash(self) -> str:
        return text_hash(self.text)

    @cached_property
    def _compiled(self) -> list[tuple[Role, jinja2.Template]]:
        compiled = []
        for role, source in self.messages:
            try:
                compiled.append((role, _ENVIRONMENT.from_string(source)))
            except jinja2.TemplateSyntaxError as exc:
                raise BadInput(
                    f"template syntax error: {exc.message}; fix the Jinja2 markup",
                    file=self.path,
                    line=self._line_of(source, exc.lineno),
                ) from exc
        return compiled

    def _line_of(self, source: str, line_in_source: int) -> int:
        start = self.text.find(source)
        return line_in_source if start < 0 else self.text.count("\n", 0, start) + line_in_source

    def check(self) -> None:
        """Compile every message now, so syntax errors surface before any call."""
        _ = self._compiled

    def render(self, variables: dict[str, Any], example_id: str) -> tuple[ChatMessage, ...]:
        rendered = []
        for role, template in self._compiled:
            try:
                content = template.render(**variables)
            except jinja2.UndefinedError as exc:
                raise BadInput(
                    f"template variable {exc.message} for example '{example_id}'; add it to the "
                    "eval set's `vars` or remove it from the prompt",
                    file=self.path,
                ) from exc
            except jinja2.exceptions.SecurityError as exc:
                raise BadInput(
                    f"template uses a construct the sandbox forbids ({exc}); prompts may only "
                    "substitute variables and use plain Jinja2 filters",
                    file=self.path,
                ) from exc
            except jinja2.TemplateError as exc:
                raise BadInput(
                    f"template failed for example '{example_id}': {exc}", file=self.path
                ) from exc
            rendered.append(ChatMessage(role=role, content=content))
        return tuple(rendered)


def parse_prompt(path: str, text: str) -> PromptTemplate:
    if not is_prompt_yaml(path):
        template = PromptTemplate(path=path, text=text, messages=(("user", text),))
    else:
        data = validate_yaml(_PromptYaml, text, path)
        parameters = {}
        for name, value in data.modelParameters.items():
            if name not in _PARAMETER_NAMES:
                raise BadInput(
                    f"unknown modelParameters key '{name}'; known: {', '.join(_PARAMETER_NAMES)}",
                    file=path,
                )
            parameters[_PARAMETER_NAMES[name]] = value
        template = PromptTemplate(
            path=path,
            text=text,
            messages=tuple((m.role, m.content) for m in data.messages),
            model=data.model,
            parameters=parameters,
            test_data=data.testData,
        )
    template.check()
    return template
