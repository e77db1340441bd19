"""promptgate: a CI gate for LLM prompts."""

__version__ = "0.1.0"
