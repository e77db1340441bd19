"""Prompt files: plain Jinja2 templates and GitHub Models `.prompt.yml` files.

Templates render in a bounded Jinja2 sandbox (promptgate.sandbox) with StrictUndefined: a PR's
prompt is data, never code, it may not stall the job or exhaust its memory, and a missing
variable is an error rather than a silently blank prompt.
"""

from __future__ import annotations

import hashlib
import time
from functools import cached_property
from typing import Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from promptgate.errors import BadInput
from promptgate.providers.base import ChatMessage
from promptgate.sandbox import (
    LIMITS_SUMMARY,
    PromptSandbox,
    TemplateLimit,
    budget,
    render_bounded,
)
from promptgate.yamlsource import line_of, validate_yaml

PROMPT_YAML_SUFFIXES = (".prompt.yml", ".prompt.yaml")
#: All renders of one prompt version together (a render has its own, shorter, deadline).
MAX_RENDER_SECONDS_PER_PROMPT = 60.0
Role = Literal["system", "user", "assistant", "developer"]

_ENVIRONMENT = PromptSandbox(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
    loader=jinja2.DictLoader({}),  # a prompt stands alone: include/import/extends find nothing
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
    #: Time spent rendering this prompt so far, over all examples.
    _render_seconds: float = PrivateAttr(default=0.0)

    @property
    def hash(self) -> str:
        return text_hash(self.text)

    @cached_property
    def _compiled(self) -> list[tuple[Role, jinja2.Template]]:
        compiled = []
        for role, source in self.messages:
            try:
                with budget():  # constant folding runs filters while compiling
                    compiled.append((role, _ENVIRONMENT.from_string(source)))
            except jinja2.TemplateSyntaxError as exc:
                raise BadInput(
                    f"template syntax error: {exc.message}; fix the Jinja2 markup",
                    file=self.path,
                    line=self._line_of(source, exc.lineno),
                ) from exc
            except (SyntaxError, RecursionError) as exc:  # Python's own limits on the compiled code
                raise BadInput(
                    "template nested too deeply to compile; simplify its blocks and expressions",
                    file=self.path,
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
        for (role, source), (_, template) in zip(self.messages, self._compiled, strict=True):
            try:
                content = self._render_one(template, variables)
            except Exception as exc:  # the template is data: anything it raises is a bad prompt
                raise BadInput(
                    _render_failure(exc, example_id),
                    file=self.path,
                    line=self._error_line(source, exc),
                ) from exc
            rendered.append(ChatMessage(role=role, content=content))
        return tuple(rendered)

    def _render_one(self, template: jinja2.Template, variables: dict[str, Any]) -> str:
        if self._render_seconds > MAX_RENDER_SECONDS_PER_PROMPT:
            raise TemplateLimit(
                f"rendering it over the eval set took over {MAX_RENDER_SECONDS_PER_PROMPT:g} s"
            )
        started = time.monotonic()
        try:
            with budget():
                # The vars as one mapping, not **kwargs: a var named `self` must not clash.
                return render_bounded(template.generate(variables))
        finally:
            self._render_seconds += time.monotonic() - started

    def _error_line(self, source: str, exc: BaseException) -> int | None:
        """The file line of the template code that raised (Jinja2 names its frames <template>)."""
        line = None
        frame = exc.__traceback__
        while frame is not None:
            if frame.tb_frame.f_code.co_filename == "<template>":
                line = frame.tb_lineno
            frame = frame.tb_next
        return None if line is None else self._line_of(source, line)


def _render_failure(exc: Exception, example_id: str) -> str:
    """What went wrong rendering a prompt for an example, and what to do about it."""
    if isinstance(exc, TemplateLimit):
        return (
            f"template stopped for example '{example_id}': {exc}; {LIMITS_SUMMARY}. "
            "Remove loops that never end, runaway macros and repeated text"
        )
    if isinstance(exc, jinja2.UndefinedError):
        return (
            f"template variable {exc.message} for example '{example_id}'; add it to the "
            "eval set's `vars` or remove it from the prompt"
        )
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return (
            f"template uses a construct the sandbox forbids ({exc}); prompts may only "
            "substitute variables and use plain Jinja2 filters"
        )
    return (
        f"template failed for example '{example_id}' ({type(exc).__name__}: {exc}); "
        "fix the template or the example's vars"
    )


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
                    line=line_of(text, ["modelParameters", name]),
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
