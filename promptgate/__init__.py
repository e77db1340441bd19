"""promptgate: a CI gate for LLM prompts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("promptgate")  # one source of truth: pyproject.toml
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
