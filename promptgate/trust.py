"""Files promptgate reads back or writes into, told apart from files a pull request put there.

Whoever opens a PR controls every file its checkout holds: a committed answer cache, MLflow
store or shard directory would decide a verdict, and a committed symbolic link would send
promptgate's writes elsewhere. A path is *untrusted* when it lies in a git work tree and git
holds it (at HEAD or in the index) or it is reached through a symbolic link below the work
tree's root. What a workflow step made (a restored `actions/cache` entry, a downloaded
artifact) is untracked, so it stays usable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

STATE_DIR = ".promptgate"
STATE_IGNORE = "# created by promptgate: its local state, not to commit\n*\n"
#: What sqlite keeps beside a database file; a committed `-wal` alone can forge its content.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
GIT_TIMEOUT_S = 30


def untrusted_reason(
    path: Path, *, companions: Sequence[str] = (), root: Path | None = None
) -> str | None:
    """Why promptgate must not read or write `path`, or None when it may.

    `companions` are suffixes of sibling files read with it (sqlite's `-wal`, ...). `root` is
    the work tree when the caller knows it; otherwise the nearest one above `path` is found.
    """
    absolute = Path(os.path.abspath(path))
    root = Path(os.path.abspath(root)) if root is not None else _work_tree_of(absolute)
    if root is None or not absolute.is_relative_to(root):
        return None  # outside any checkout: the workflow or the user chose it
    links = [p for p in (absolute, *absolute.parents) if p.is_relative_to(root) and p != root]
    links = [p for p in links if p.is_symlink()]
    if links:
        link = links[-1]
        return f"{_shown(link, root)} is a symbolic link (to {os.readlink(link)!r})"
    if not os.path.lexists(root / ".git"):
        return None  # not a checkout: git holds nothing here
    relative = absolute.relative_to(root).as_posix()
    held = tracked(root, [relative, *(relative + suffix for suffix in companions)])
    if held:
        return f"git tracks {', '.join(held[:3])}{' …' if len(held) > 3 else ''}"
    return None


def tracked(root: Path, relative_paths: Sequence[str]) -> list[str]:
    """Which of these paths (a directory stands for every file below it) git holds at HEAD or
    in the index of the work tree at `root`."""
    specs = [f":(literal){p}" for p in relative_paths if p and p != "."]
    if not specs:
        return []
    found: set[str] = set()
    for command in (
        ["ls-files", "-z", "--cached", "--"],
        ["ls-tree", "-r", "-z", "--name-only", "HEAD", "--"],
    ):
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *command, *specs],
                capture_output=True,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return list(relative_paths)  # cannot tell: fail closed
        if done.returncode == 0:
            found.update(name for name in done.stdout.decode(errors="replace").split("\0") if name)
        elif command[0] == "ls-files":
            return list(relative_paths)
    return sorted(found)


def ensure_state_dir(root: Path) -> Path | None:
    """`<root>/.promptgate`, created with a `.gitignore` of `*` so nothing in it shows up as a
    change to commit; None when it is not promptgate's to use (see `untrusted_reason`)."""
    directory = root / STATE_DIR
    if untrusted_reason(directory, root=root) is not None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not os.path.lexists(ignore):
        ignore.write_text(STATE_IGNORE, encoding="utf-8")
    return directory


def repository_state_dir(directory: Path) -> Path | None:
    """`.promptgate` at the root of the git work tree holding `directory`; None outside one.
    Nothing is created: readers (`promptgate registry`) find a local run's store here."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    top = done.stdout.strip()
    return Path(top) / STATE_DIR if done.returncode == 0 and top else None


def reclaim_state_dir(workspace: Path) -> str | None:
    """In CI: make `<workspace>/.promptgate` a plain directory holding nothing from the PR.

    A symbolic link, a file, or a directory holding anything git tracks is removed (the runner's
    checkout is disposable) and the directory made anew. Returns what was removed, for a warning.
    """
    directory = workspace / STATE_DIR
    reason = untrusted_reason(directory, root=workspace)
    if reason is None:
        if os.path.lexists(directory) and not directory.is_dir():
            reason = f"{STATE_DIR} is not a directory"
        else:
            ensure_state_dir(workspace)
            return None
    if directory.is_symlink() or not directory.is_dir():
        directory.unlink()
    else:
        shutil.rmtree(directory)
    ensure_state_dir(workspace)
    return (
        f"{reason}: the PR put it in {STATE_DIR}/, where promptgate keeps its own state, so it "
        f"was removed and {STATE_DIR}/ started empty (no cached answers were used)"
    )


def _work_tree_of(path: Path) -> Path | None:
    """The nearest enclosing git work tree above `path` (a linked directory is not one: a PR
    could point it anywhere)."""
    for candidate in path.parents:
        if not candidate.is_symlink() and os.path.lexists(candidate / ".git"):
            return candidate
    return None


def _shown(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
