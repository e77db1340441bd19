"""What the registry commands return."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from promptgate.errors import BadInput
from promptgate.registry.names import ALIAS

if TYPE_CHECKING:
    pass


Action = Literal[
    "registered", "unchanged", "stale", "skipped", "conflict", "marked-deleted", "marked-renamed"
]


class RegisteredPrompt(BaseModel):
    """What happened to one changed prompt in the registry."""

    path: str
    name: str
    action: Action
    version: int | None = None
    note: str | None = None

    def describe(self, alias: str) -> str:
        place = f"{self.path} → {self.name}"
        if self.action == "registered":
            return f"{place} version {self.version} ({alias})"
        if self.action == "unchanged":
            return f"{place} version {self.version} already holds this text ({alias})"
        return f"{place}: {self.action}" + (f" ({self.note})" if self.note else "")


class RegistryOutcome(BaseModel):
    tracking_uri: str
    alias: str = ALIAS
    prompts: list[RegisteredPrompt] = Field(default_factory=list)
    warning: str | None = None

    def lines(self) -> list[str]:
        return [prompt.describe(self.alias) for prompt in self.prompts]

    def summary_markdown(self) -> str:
        """A job-summary section; paths come from the repository, so they are escaped."""
        from promptgate.report.escape import inline

        items = "".join(f"- {inline(line, 300)}\n" for line in self.lines())
        return f"### Prompt Registry ({inline(self.tracking_uri)})\n\n{items}"


class PromptVersionInfo(BaseModel):
    """One version as `promptgate registry NAME` shows it."""

    name: str
    version: int
    created: datetime
    aliases: list[str] = Field(default_factory=list)
    commit: str | None = None
    commit_message: str | None = None
    path: str | None = None
    gate_run: str | None = None
    gate_verdict: str | None = None
    prompt_verdict: str | None = None


class PromptInfo(BaseModel):
    """One prompt as `promptgate registry` shows it."""

    name: str
    path: str | None
    versions: int
    latest_version: int | None
    production_version: int | None
    commit: str | None = Field(default=None, description="the commit of the latest registration")
    deleted_in: str | None = None
    renamed_to: str | None = None


class UnknownPrompt(BadInput):
    """No prompt of that name or path in the registry (exit 2)."""
