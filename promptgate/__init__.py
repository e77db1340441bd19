"""promptgate: a CI gate for LLM prompts."""

from typing import Any


def __getattr__(name: str) -> Any:
    # Looked up on first use: importlib.metadata costs ~35 ms, on every run's path to its first call.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("promptgate")  # one source of truth: pyproject.toml
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
