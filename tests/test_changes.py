import subprocess
from pathlib import Path

import git
import pytest
from gitrepo import RepoBuilder

from promptgate.changes import all_prompts, changed_prompts, open_repo, resolve_range, spec_for
from promptgate.config import PromptSpec
from promptgate.errors import BadInput

SPECS = [PromptSpec(path="prompts/**/*.txt", dataset="evals/{stem}.jsonl")]


@pytest.fixture
def repo(tmp_path: Path) -> RepoBuilder:
    builder = RepoBuilder(tmp_path / "repo")
    builder.commit(
        {"prompts/a.txt": "A {{ x }}", "prompts/b.txt": "B {{ x }}", "README.md": "hi"}, "base"
    )
    builder.branch("pr")
    return builder


def _changes(builder: RepoBuilder) -> list[tuple[str, str | None, str]]:
    rng = resolve_range(builder.repo, "main", "pr")
    return [(c.path, c.old_path, c.change) for c in changed_prompts(rng, SPECS)]


def test_globs_cross_directories_only_with_double_star() -> None:
    assert spec_for("prompts/x.txt", SPECS) is not None
    assert spec_for("prompts/deep/er/x.txt", SPECS) is not None
    assert spec_for("other/x.txt", SPECS) is None
    assert spec_for("prompts/x.md", SPECS) is None
    single = [PromptSpec(path="prompts/*.txt")]
    assert spec_for("prompts/deep/x.txt", single) is None


def test_no_prompt_change_finds_nothing(repo: RepoBuilder) -> None:
    repo.commit({"README.md": "changed"})
    assert _changes(repo) == []


def test_modified_added_and_deleted_prompts_are_found(repo: RepoBuilder) -> None:
    repo.commit(
        {"prompts/a.txt": "A2 {{ x }}", "prompts/new/c.txt": "C"}, delete=("prompts/b.txt",)
    )
    assert _changes(repo) == [
        ("prompts/a.txt", None, "modified"),
        ("prompts/b.txt", None, "deleted"),
        ("prompts/new/c.txt", None, "added"),
    ]


def test_a_renamed_prompt_keeps_its_old_path(repo: RepoBuilder) -> None:
    repo.rename("prompts/a.txt", "prompts/renamed.txt")
    assert _changes(repo) == [("prompts/renamed.txt", "prompts/a.txt", "renamed")]


def test_the_diff_starts_at_the_merge_base_as_github_shows_a_pr(repo: RepoBuilder) -> None:
    repo.commit({"prompts/a.txt": "changed on the PR"})
    repo.checkout("main")
    repo.commit({"prompts/b.txt": "changed on main after the branch point"})
    assert _changes(repo) == [("prompts/a.txt", None, "modified")]


def test_text_is_read_from_git_objects_not_the_work_tree(repo: RepoBuilder) -> None:
    head = repo.commit({"prompts/a.txt": "committed"})
    (repo.root / "prompts/a.txt").write_text("uncommitted edit")
    rng = resolve_range(repo.repo, "main", "pr")
    assert rng.read(head, "prompts/a.txt") == "committed"
    assert rng.read(rng.merge_base_sha, "prompts/a.txt") == "A {{ x }}"


def test_all_marks_unchanged_prompts(repo: RepoBuilder) -> None:
    repo.commit({"prompts/a.txt": "A2"})
    rng = resolve_range(repo.repo, "main", "pr")
    assert [(c.path, c.change) for c in all_prompts(rng, SPECS)] == [
        ("prompts/a.txt", "modified"),
        ("prompts/b.txt", "unchanged"),
    ]


def test_an_unknown_ref_is_bad_input_naming_it(repo: RepoBuilder) -> None:
    with pytest.raises(BadInput) as caught:
        resolve_range(repo.repo, "no-such-branch", "pr")
    assert "no-such-branch" in caught.value.message


def test_a_directory_that_is_not_a_repository_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as caught:
        open_repo(tmp_path)
    assert "not a git repository" in caught.value.message


def _shallow_clone(source: Path, target: Path, branch: str) -> git.Repo:
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "--branch", branch, source.as_uri(), str(target)],
        check=True,
    )
    return git.Repo(target)


def test_a_shallow_clone_without_a_remote_asks_for_fetch_depth_zero(
    repo: RepoBuilder, tmp_path: Path
) -> None:
    repo.commit({"prompts/a.txt": "A2"})
    base_sha = repo.repo.heads["main"].commit.hexsha
    clone = _shallow_clone(repo.root, tmp_path / "clone", "pr")
    clone.delete_remote(clone.remotes[0])
    with pytest.raises(BadInput) as caught:
        resolve_range(clone, base_sha, "HEAD")
    assert "fetch-depth: 0" in caught.value.message


def test_a_shallow_clone_with_a_remote_fetches_the_base(repo: RepoBuilder, tmp_path: Path) -> None:
    repo.commit({"prompts/a.txt": "A2"})
    base_sha = repo.repo.heads["main"].commit.hexsha
    clone = _shallow_clone(repo.root, tmp_path / "clone", "pr")
    rng = resolve_range(clone, base_sha, "HEAD")
    assert rng.merge_base_sha == base_sha
    assert [(c.path, c.change) for c in changed_prompts(rng, SPECS)] == [
        ("prompts/a.txt", "modified")
    ]


def test_a_byte_order_mark_is_not_part_of_the_text(repo: RepoBuilder) -> None:
    """Editors on Windows save UTF-8 with a BOM; a CSV header or a JSON line must still parse."""
    repo.commit({"evals/a.csv": "\ufeffid,expected\nex-1,hello\n"})
    rng = resolve_range(repo.repo, "HEAD", "HEAD")
    assert rng.read(rng.head_sha, "evals/a.csv") == "id,expected\nex-1,hello\n"
