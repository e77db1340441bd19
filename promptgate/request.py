"""GateRequest: the only thing the CLI and the Action entrypoint build."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from promptgate.config import DEFAULT_CONFIG_PATH


class GateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    repo: Path = Path(".")
    base: str | None = Field(default=None, description="default: origin/HEAD, else HEAD~1")
    head: str | None = Field(default=None, description="default: HEAD")
    config_path: str = DEFAULT_CONFIG_PATH
    all_prompts: bool = False
    report_json: Path | None = None
    report_md: Path | None = None
    use_cache: bool = True
    cache_path: Path | None = None
    mlflow_tracking_uri: str | None = None
    pr_number: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    state_dir: Path | None = Field(
        default=None,
        description="CI: promptgate's own directory, out of a PR's reach; a relative sqlite "
        "tracking store is kept there",
    )
    cache_only: str | None = Field(
        default=None, description="send nothing; a request the cache lacks fails with this"
    )
