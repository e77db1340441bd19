"""Real git repositories in temp dirs, built commit by commit."""

from __future__ import annotations

from pathlib import Path

import git

AUTHOR = git.Actor("Test Author", "author@example.invalid")


class RepoBuilder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = git.Repo.init(root, initial_branch="main")

    def commit(
        self,
        files: dict[str, str] | None = None,
        message: str = "change",
        *,
        delete: tuple[str, ...] = (),
    ) -> str:
        for name, text in (files or {}).items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if files:
            self.repo.index.add(list(files))
        if delete:
            self.repo.index.remove(list(delete), working_tree=True)
        commit = self.repo.index.commit(message, author=AUTHOR, committer=AUTHOR)
        return str(commit.hexsha)

    def rename(self, old: str, new: str, message: str = "rename") -> str:
        (self.root / new).parent.mkdir(parents=True, exist_ok=True)
        self.repo.index.move([old, new])
        commit = self.repo.index.commit(message, author=AUTHOR, committer=AUTHOR)
        return str(commit.hexsha)

    def branch(self, name: str, start: str = "HEAD") -> None:
        self.repo.create_head(name, start).checkout()

    def checkout(self, name: str) -> None:
        self.repo.heads[name].checkout()
