"""Which config governs a run: the base side's, so a PR cannot loosen its own gate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from promptgate.changes import GitRange
from promptgate.config import Config, parse_config
from promptgate.errors import BadInput

ConfigSource = Literal["base", "head", "file"]


@dataclass(frozen=True)
class GateConfig:
    config: Config
    path: str
    source: ConfigSource
    changed: bool  # the PR's head config differs from the one that governs the run


def load_gate_config(rng: GitRange, config_path: str, repo_root: Path) -> GateConfig:
    """The base ref's config when it has one; else the head's (first adoption); else a file.

    A path outside the repository (or untracked) is read from disk, for local experiments.
    """
    relative = _repo_relative(config_path, repo_root)
    if relative is not None:
        base_text = rng.read(rng.base_sha, relative)
        head_text = rng.read(rng.head_sha, relative)
        if base_text is not None:
            governing = parse_config(base_text, f"{relative} (at base {rng.base_sha[:12]})")
            return GateConfig(governing, relative, "base", _differs(governing, head_text, relative))
        if head_text is not None:
            return GateConfig(parse_config(head_text, relative), relative, "head", False)
    disk = Path(config_path) if Path(config_path).is_absolute() else repo_root / config_path
    if disk.is_file():
        return GateConfig(
            parse_config(disk.read_text(encoding="utf-8"), str(disk)), str(disk), "file", False
        )
    raise BadInput(
        "no gate config at the base or head commit; create one with `promptgate init` "
        "(and commit it) or pass --config",
        file=config_path,
    )


def _repo_relative(config_path: str, repo_root: Path) -> str | None:
    path = Path(config_path)
    if not path.is_absolute():
        return path.as_posix().removeprefix("./")
    try:
        return path.resolve().relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        return None


def _differs(governing: Config, head_text: str | None, path: str) -> bool:
    if head_text is None:
        return True
    try:
        return parse_config(head_text, path) != governing
    except BadInput:
        return True  # the PR's config does not even parse: certainly a change worth flagging
