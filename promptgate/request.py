"""GateRequest: the only thing the CLI and the Action entrypoint build."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
        "tracking store is kept there (default: the repository's .promptgate/)",
    )
    work_tree: Literal["never", "always", "if-uncommitted"] = Field(
        default="never",
        description="judge the working tree as the head side: never (CI), always "
        "(--worktree), or when a file the gate reads has uncommitted changes (a local run "
        "without --head)",
    )
    limit: int | None = Field(
        default=None, ge=1, description="judge only each eval set's first N examples (partial)"
    )
    example_ids: tuple[str, ...] = Field(
        default=(), description="judge only the examples with these ids (partial)"
    )
    cache_only: str | None = Field(
        default=None, description="send nothing; a request the cache lacks fails with this"
    )

    @property
    def partial(self) -> bool:
        """A subset of each eval set: a look while editing, never a verdict for CI."""
        return self.limit is not None or bool(self.example_ids)
