"""The working tree as a head side: what a local `promptgate run` judges before a commit.

The uncommitted state of the files a gate reads (tracked edits and deletions, and untracked
files that match a configured prompt glob, plus those prompts' eval sets and the config) is
written as a commit on top of HEAD through a temporary index, as `git stash create` does: no
ref, index or file of the user's changes, and git's own rules (`.gitignore`, links stored as
links) apply. Everything after that reads git objects as for any commit, so the working tree
meets the same checks as a pull request (no link followed, size limits, UTF-8). A CI run never
gets here: the Action judges commits, and the CLI refuses `--worktree` under CI.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from promptgate.changes import GitRange, paths_at, spec_for
from promptgate.config import PromptSpec
from promptgate.errors import CouldNotEvaluate
from promptgate.gate_config import GateConfig, load_gate_config, repo_relative
from promptgate.request import GateRequest

WORK_TREE_REF = "working tree"
GIT_TIMEOUT_S = 60
#: who the snapshot commit names: it is never pushed, and a user need not have set their own
SNAPSHOT_IDENTITY = {
    "GIT_AUTHOR_NAME": "promptgate",
    "GIT_AUTHOR_EMAIL": "promptgate@localhost",
    "GIT_COMMITTER_NAME": "promptgate",
    "GIT_COMMITTER_EMAIL": "promptgate@localhost",
}


def is_ci() -> bool:
    """A CI job (GitHub Actions and most others set CI): its verdict is about commits only."""
    flag = os.environ.get("CI", "").strip().lower()
    return flag not in ("", "0", "false", "no") or os.environ.get("GITHUB_ACTIONS") == "true"


def work_tree_side(
    rng: GitRange, gate_config: GateConfig, request: GateRequest, repo_root: Path
) -> tuple[GitRange, GateConfig]:
    """The range and config with the working tree as the head side, when the request asks for
    it and a file the gate reads has uncommitted changes (`rng.uncommitted`). The config is
    read again: a first adoption's config is the head's, and a changed one is reported."""
    if request.work_tree == "never":
        return rng, gate_config
    config_path = repo_relative(request.config_path, repo_root) or ""
    files = uncommitted_files(rng, list(gate_config.config.prompts), config_path)
    if not files:
        return rng, gate_config
    rng = with_work_tree(rng, files)
    return rng, load_gate_config(rng, request.config_path, repo_root)


def uncommitted_files(rng: GitRange, specs: list[PromptSpec], config_path: str) -> list[str]:
    """The files a gate reads that differ from HEAD in the working tree (staged or not): the
    config, the files a prompt glob matches (committed, staged or untracked) and their eval
    sets; repository paths, sorted. A clean tree costs two git calls."""
    from promptgate.plan import eval_set_of  # plan.py imports changes.py

    root = Path(str(rng.repo.working_tree_dir))
    changed = _git_paths(root, "diff", "--name-only", "-z", "--no-renames", "HEAD", "--")
    untracked = _git_paths(root, "ls-files", "--others", "--exclude-standard", "-z", "--")
    if not changed and not untracked:
        return []
    prompts = {
        path: spec
        for path in {*paths_at(rng, rng.head_sha), *changed, *untracked}
        if (spec := spec_for(path, specs)) is not None
    }
    read = {config_path, *prompts, *(eval_set_of(path, spec) for path, spec in prompts.items())}
    return sorted(path for path in {*changed, *untracked} if path in read)


def with_work_tree(rng: GitRange, files: Sequence[str]) -> GitRange:
    """`rng` with its head the working tree: HEAD plus these files as they are on disk."""
    root = Path(str(rng.repo.working_tree_dir))
    head = rng.head_sha
    with tempfile.TemporaryDirectory(prefix="promptgate-index-") as scratch:
        env = {**os.environ, **SNAPSHOT_IDENTITY, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(root, env, "read-tree", head)
        if files:
            pathspecs = "".join(f":(literal){path}\0" for path in files)
            _git(
                root,
                env,
                "add",
                "-A",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
                stdin=pathspecs,
            )
        tree = _git(root, env, "write-tree").strip()
        snapshot = _git(
            root, env, "commit-tree", tree, "-p", head, "-m", "promptgate: the working tree"
        ).strip()
    return replace(
        rng, head_ref=WORK_TREE_REF, head_sha=snapshot, work_tree_on=head, uncommitted=tuple(files)
    )


def _git_paths(root: Path, *args: str) -> list[str]:
    return [path for path in _git(root, None, *args).split("\0") if path]


def _git(root: Path, env: dict[str, str] | None, *args: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            input=stdin,
            env=env,
            capture_output=True,
            encoding="utf-8",
            errors="surrogateescape",  # a file name need not be UTF-8
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CouldNotEvaluate(f"git {args[0]} failed on the working tree: {exc}") from exc
    if done.returncode != 0:
        raise CouldNotEvaluate(
            f"git {args[0]} failed on the working tree: {done.stderr.strip() or done.returncode}"
        )
    return done.stdout
