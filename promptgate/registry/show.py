"""Printing what is registered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promptgate.registry.model import PromptInfo, PromptVersionInfo
from promptgate.registry.names import ALIAS

if TYPE_CHECKING:
    pass


def print_prompts(console: Console, prompts: list[PromptInfo], where: str) -> None:
    if not prompts:
        console.print(f"no prompts registered by promptgate in {escape(where)}")
        return
    table = Table(title=f"prompts in {escape(where)}", title_justify="left")
    for column in ("name", "path", "versions", ALIAS, "last commit", "note"):
        table.add_column(column)
    for prompt in prompts:
        note = (
            f"deleted in {prompt.deleted_in[:7]}"
            if prompt.deleted_in
            else f"renamed to {prompt.renamed_to}"
            if prompt.renamed_to
            else ""
        )
        table.add_row(
            escape(prompt.name),
            escape(prompt.path or ""),
            str(prompt.versions),
            str(prompt.production_version or "—"),
            (prompt.commit or "")[:7],
            escape(note),
        )
    console.print(table)


def print_versions(console: Console, name: str, versions: list[PromptVersionInfo]) -> None:
    table = Table(title=f"prompt {escape(name)}", title_justify="left")
    for column in ("version", "created (UTC)", "aliases", "commit", "gate run", "verdict"):
        table.add_column(column)
    for version in versions:
        table.add_row(
            str(version.version),
            version.created.strftime("%Y-%m-%d %H:%M:%S"),
            escape(", ".join(version.aliases)),
            escape((version.commit or "")[:7]),
            escape(version.gate_run or ""),
            escape(version.prompt_verdict or ""),
        )
    console.print(table)
