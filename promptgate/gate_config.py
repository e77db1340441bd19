"""Which config governs a run: the base side's, so a PR cannot loosen its own gate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from promptgate.changes import GitRange
from promptgate.config import Config, parse_config
from promptgate.errors import BadInput
from promptgate.report.model import ConfigChange

ConfigSource = Literal["base", "head", "file"]


@dataclass(frozen=True)
class GateConfig:
    config: Config
    path: str
    source: ConfigSource
    changed: bool  # the PR's head config differs from the one that governs the run
    changes: list[ConfigChange] = field(default_factory=list)  # setting by setting, when changed


def load_gate_config(rng: GitRange, config_path: str, repo_root: Path) -> GateConfig:
    """The base ref's config when it has one; else the head's (first adoption); else a file.

    A path outside the repository (or untracked) is read from disk, for local experiments.
    """
    relative = repo_relative(config_path, repo_root)
    if relative is not None:
        base_text = rng.read(rng.base_sha, relative)
        head_text = rng.read(rng.head_sha, relative)
        if base_text is not None:
            governing = parse_config(base_text, f"{relative} (at base {rng.base_sha[:12]})")
            changes = config_changes(governing, head_text, relative)
            return GateConfig(governing, relative, "base", bool(changes), changes)
        if head_text is not None:
            return GateConfig(parse_config(head_text, relative), relative, "head", False)
    disk = Path(config_path) if Path(config_path).is_absolute() else repo_root / config_path
    if disk.is_file():
        return GateConfig(
            parse_config(disk.read_text(encoding="utf-8-sig"), str(disk)), str(disk), "file", False
        )
    raise BadInput(
        "no gate config at the base or head commit; create one with `promptgate init` "
        "(and commit it) or pass --config",
        file=config_path,
    )


def repo_relative(config_path: str, repo_root: Path) -> str | None:
    path = Path(config_path)
    if not path.is_absolute():
        return path.as_posix().removeprefix("./")
    try:
        return path.resolve().relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        return None


def config_changes(governing: Config, head_text: str | None, path: str) -> list[ConfigChange]:
    """What the PR's config would change, setting by setting (empty when it changes nothing)."""
    if head_text is None:
        return [ConfigChange(setting=path, base="present", head="deleted by this PR")]
    try:
        proposed = parse_config(head_text, path)
    except BadInput as exc:  # the PR's config does not even parse: certainly worth flagging
        return [ConfigChange(setting=path, base="valid", head=f"invalid: {exc}")]
    if proposed == governing:
        return []
    before, after = (
        _flatten(governing.model_dump(mode="json")),
        _flatten(proposed.model_dump(mode="json")),
    )
    return [
        ConfigChange(
            setting=key,
            base=before.get(key),
            head=after.get(key),
            loosens=_loosens(key, before.get(key), after.get(key)),
        )
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """`{"metrics": {"bleu": {"max_drop": 2}}}` -> `{"metrics.bleu.max_drop": 2}`; lists by index."""
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = list(value.items())
    elif isinstance(value, list):
        items = [(f"[{index}]", item) for index, item in enumerate(value)]
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        joined = f"{prefix}{key}" if key.startswith("[") or not prefix else f"{prefix}.{key}"
        flat |= _flatten(item, joined)
    return flat


def _loosens(setting: str, base: Any, head: Any) -> bool:
    """Whether the change would let a regression through more easily, were it to govern."""
    name = setting.rsplit(".", 1)[-1]
    if setting.startswith("metrics.") and head is None:
        return True  # a metric (or its floor) removed
    numeric = isinstance(base, int | float) and isinstance(head, int | float)
    if name == "max_drop" and numeric:
        return bool(head > base)
    if name == "min" and numeric:
        return bool(head < base)
    if setting == "gate.confidence" and numeric:
        return bool(head > base)  # a wider interval reaches below zero less often
    if setting == "gate.error_rate" and numeric:
        return bool(head < base)  # a lower error rate needs stronger evidence to fail
    if setting == "gate.on_dataset_change":
        return bool(base == "fail" and head != "fail")
    return False
