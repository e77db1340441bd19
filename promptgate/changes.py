"""Which prompt files a change touches, between merge-base(base, head) and head, read from git.

Text always comes from git objects, never the work tree, so what is judged is what was committed.
A local run that judges uncommitted edits commits them first, as an object no ref points to
(worktree.py); a first commit, with nothing before it, is compared with git's empty tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError
from pydantic import BaseModel, ConfigDict

from promptgate.config import PromptSpec
from promptgate.errors import BadInput, CouldNotEvaluate
from promptgate.report.model import ChangeKind

FETCH_TIMEOUT_S = 120
#: git's empty tree: the "base" of a head with no commit before it (`has_base` is False)
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
NO_BASE_REF = "(no base)"
#: Largest prompt or eval-set file read (a PR could commit any size).
MAX_FILE_BYTES = 64 * 2**20


class PromptChange(BaseModel):
    """One prompt file to judge. `path` is the head path (the old path for a deletion)."""

    model_config = ConfigDict(frozen=True)
    path: str
    old_path: str | None
    change: ChangeKind
    spec: PromptSpec


@dataclass(frozen=True)
class GitRange:
    repo: git.Repo
    base_ref: str
    head_ref: str
    base_sha: str
    head_sha: str
    merge_base_sha: str
    #: the commit a working-tree head sits on (worktree.py); None when the head is a commit
    work_tree_on: str | None = None
    #: with `work_tree_on`: the files of the working tree that differ from that commit
    uncommitted: tuple[str, ...] = ()

    @property
    def has_base(self) -> bool:
        return self.base_sha != EMPTY_TREE

    @property
    def shown_head_sha(self) -> str:
        """The head's commit as reports name it: for the working tree, the HEAD it sits on."""
        return self.work_tree_on or self.head_sha

    def read(self, sha: str, path: str) -> str | None:
        """The file's text at a commit, or None when it does not exist there.

        Only a regular committed file is read. A submodule (gitlink), a symbolic link or a
        directory at `path` is bad input: a link's target is never followed, so nothing outside
        the commit (or the repository) can be reached through one."""
        if sha == EMPTY_TREE:
            return None
        try:
            entry = self.repo.commit(sha).tree / path
        except KeyError:
            return None
        _check_regular_file(entry, path)
        data: bytes = entry.data_stream.read()
        try:
            return data.decode("utf-8-sig")  # a byte-order mark is not content
        except UnicodeDecodeError as exc:
            line = exc.object[: exc.start].count(b"\n") + 1
            raise BadInput(
                f"not UTF-8 text (byte 0x{exc.object[exc.start]:02X} on this line); "
                "save the file as UTF-8",
                file=path,
                line=line,
            ) from exc

    def blob_id(self, sha: str, path: str) -> str | None:
        """The object id at `path` (a submodule's commit id for a gitlink), None when absent."""
        if sha == EMPTY_TREE:
            return None
        try:
            return str((self.repo.commit(sha).tree / path).hexsha)
        except KeyError:
            return None


def _check_regular_file(entry: git.objects.Object, path: str) -> None:
    if isinstance(entry, git.Submodule):
        raise BadInput(
            "is a git submodule (a gitlink), not a file; promptgate reads files committed in "
            "this repository: commit the prompt or eval set itself, or point the config at one",
            file=path,
        )
    if isinstance(entry, git.Tree):
        raise BadInput(
            "is a directory, not a file; point the config at a file (or a glob of files)",
            file=path,
        )
    if isinstance(entry, git.Blob) and entry.mode == git.Blob.link_mode:
        raise BadInput(
            "is a symbolic link; promptgate reads committed files and follows no links: commit "
            "the file itself, or point the config at the link's target",
            file=path,
        )
    if entry.size > MAX_FILE_BYTES:
        raise BadInput(
            f"is {entry.size / 2**20:.0f} MiB; prompt and eval-set files may be up to "
            f"{MAX_FILE_BYTES // 2**20} MiB: split it or trim it",
            file=path,
        )


def open_repo(directory: Path) -> git.Repo:
    try:
        repo = git.Repo(directory, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError) as exc:
        raise BadInput(
            "not a git repository; run promptgate inside a clone or pass --repo",
            file=str(directory),
        ) from exc
    return repo


def default_base(repo: git.Repo) -> str:
    """The upstream default branch (origin/HEAD) where it is known, else HEAD~1."""
    for remote in repo.remotes:
        try:
            target = repo.git.symbolic_ref(f"refs/remotes/{remote.name}/HEAD", "--short")
        except GitCommandError:
            continue
        if target:
            return str(target)
    return "HEAD~1"


def resolve_range(repo: git.Repo, base: str | None, head: str | None) -> GitRange:
    """The range to judge. Without `--base`, a head with no commit before it (a new
    repository's first commit) and no upstream branch has no base: every prompt is new."""
    base_ref = base or default_base(repo)
    head_ref = head or "HEAD"
    head_sha = _resolve(repo, head_ref, "--head")
    if base is None and base_ref == "HEAD~1" and _is_first_commit(repo, "HEAD"):
        return GitRange(repo, NO_BASE_REF, head_ref, EMPTY_TREE, head_sha, EMPTY_TREE)
    base_sha = _resolve(repo, base_ref, "--base")
    merge_base = _merge_base(repo, base_sha, head_sha)
    return GitRange(repo, base_ref, head_ref, base_sha, head_sha, merge_base)


def _is_first_commit(repo: git.Repo, ref: str) -> bool:
    """No commit before `ref` in a complete clone (a shallow one only lacks its history)."""
    return not repo.commit(ref).parents and not _is_shallow(repo)


def _resolve(repo: git.Repo, ref: str, flag: str) -> str:
    sha = _try_resolve(repo, ref)
    if sha is None and _fetch(repo, ref):
        sha = _try_resolve(repo, ref) or _try_resolve(repo, "FETCH_HEAD")
    if sha is None:
        shallow = (
            " This clone is shallow: use `fetch-depth: 0` in actions/checkout."
            if _is_shallow(repo)
            else ""
        )
        raise BadInput(
            f"{flag} '{ref}' is not a commit, branch or tag in this repository; "
            f"check the name or fetch it (git fetch origin {ref}).{shallow}"
        )
    return sha


def _try_resolve(repo: git.Repo, ref: str) -> str | None:
    try:
        return str(repo.commit(ref).hexsha)
    except (BadName, ValueError, GitCommandError):
        return None


def _merge_base(repo: git.Repo, base_sha: str, head_sha: str) -> str:
    for attempt in range(2):
        try:
            found = repo.merge_base(base_sha, head_sha)
        except GitCommandError:
            found = []
        if found:
            return str(found[0].hexsha)
        if attempt == 0 and not (_is_shallow(repo) and _deepen(repo)):
            break
    hint = (
        "The clone is shallow: set `fetch-depth: 0` on actions/checkout (or `git fetch --unshallow`)."
        if _is_shallow(repo)
        else "The two refs share no history; pick a base that the head branched from."
    )
    raise BadInput(f"cannot find a merge base of {base_sha[:12]} and {head_sha[:12]}. {hint}")


def _is_shallow(repo: git.Repo) -> bool:
    return Path(repo.git_dir, "shallow").exists()


def _fetch(repo: git.Repo, ref: str) -> bool:
    """Try to fetch a missing ref (a sha or branch) from the first remote; False when impossible."""
    if not repo.remotes:
        return False
    remote = repo.remotes[0].name
    try:
        repo.git.fetch("--no-tags", remote, ref, kill_after_timeout=FETCH_TIMEOUT_S)
    except GitCommandError:
        return False
    return True


def _deepen(repo: git.Repo) -> bool:
    if not repo.remotes:
        return False
    try:
        repo.git.fetch(
            "--no-tags", "--unshallow", repo.remotes[0].name, kill_after_timeout=FETCH_TIMEOUT_S
        )
    except GitCommandError:
        return False
    return True


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a path glob: `**/` spans directories, `*` and `?` stay within one."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def spec_for(path: str, specs: list[PromptSpec]) -> PromptSpec | None:
    """The first configured prompt entry whose path or glob matches `path`."""
    return next((s for s in specs if _glob_regex(s.path.removeprefix("./")).match(path)), None)


def changed_prompts(rng: GitRange, specs: list[PromptSpec]) -> list[PromptChange]:
    try:
        raw = rng.repo.git.diff("--name-status", "-z", "-M", rng.merge_base_sha, rng.head_sha)
    except GitCommandError as exc:
        raise CouldNotEvaluate(f"git diff failed: {exc.stderr.strip() or exc}") from exc
    fields = [f for f in raw.split("\0") if f]
    changes: list[PromptChange] = []
    touched: set[str] = set()
    i = 0
    while i < len(fields):
        status = fields[i]
        if status[0] in "RC":
            old, new = fields[i + 1], fields[i + 2]
            i += 3
        else:
            old = new = fields[i + 1]
            i += 2
        touched |= {old, new}
        changes.extend(_classify(status[0], old, new, specs))
    if touched:
        changes += _eval_set_users(rng, specs, touched, {c.path for c in changes})
    return sorted(changes, key=lambda c: c.path)


def _eval_set_users(
    rng: GitRange, specs: list[PromptSpec], touched: set[str], reported: set[str]
) -> list[PromptChange]:
    """The prompts the diff leaves alone whose eval set file it changes, as `unchanged`: still
    judged (both versions on the head's eval set), so the eval-set change is reported."""
    from promptgate.plan import eval_set_of  # plan.py imports this module

    users = []
    for path in paths_at(rng, rng.head_sha):
        spec = spec_for(path, specs)
        if spec is None or path in reported:
            continue
        if eval_set_of(path, spec) in touched:
            users.append(PromptChange(path=path, old_path=None, change="unchanged", spec=spec))
    return users


def paths_at(rng: GitRange, sha: str) -> list[str]:
    """Every file path in the commit's tree, sorted."""
    return sorted(p for p in rng.repo.git.ls_tree("-r", "--name-only", "-z", sha).split("\0") if p)


def _classify(status: str, old: str, new: str, specs: list[PromptSpec]) -> list[PromptChange]:
    new_spec, old_spec = spec_for(new, specs), spec_for(old, specs)
    if status == "A" and new_spec:
        return [PromptChange(path=new, old_path=None, change="added", spec=new_spec)]
    if status == "D" and old_spec:
        return [PromptChange(path=old, old_path=None, change="deleted", spec=old_spec)]
    if status in "MT" and new_spec:
        return [PromptChange(path=new, old_path=None, change="modified", spec=new_spec)]
    if status == "R":
        if new_spec:
            return [PromptChange(path=new, old_path=old, change="renamed", spec=new_spec)]
        if old_spec:  # moved out of the configured prompts: gone as far as the gate knows
            return [PromptChange(path=old, old_path=None, change="deleted", spec=old_spec)]
    if status == "C" and new_spec:
        return [PromptChange(path=new, old_path=None, change="added", spec=new_spec)]
    return []


def all_prompts(rng: GitRange, specs: list[PromptSpec]) -> list[PromptChange]:
    """Every configured prompt at head (`--all`), each compared with its merge-base text."""
    selected = []
    for path in paths_at(rng, rng.head_sha):
        spec = spec_for(path, specs)
        if spec is None:
            continue
        old_id, new_id = rng.blob_id(rng.merge_base_sha, path), rng.blob_id(rng.head_sha, path)
        kind: ChangeKind = (
            "added" if old_id is None else "modified" if old_id != new_id else "unchanged"
        )
        selected.append(PromptChange(path=path, old_path=None, change=kind, spec=spec))
    return selected
