"""`promptgate init`: a starter config, prompt, eval set and workflow, ready to commit."""

from __future__ import annotations

from pathlib import Path

from promptgate.errors import BadInput

# package file -> where it goes in the user's repository
FILES = {
    "promptgate.yaml": "promptgate.yaml",
    "example.txt": "prompts/example.txt",
    "example.jsonl": "evals/example.jsonl",
    "workflow.yml": ".github/workflows/promptgate.yml",
}
IGNORE_LINE = ".promptgate/"
STARTER_DIR = Path(__file__).parent / "starter"


def scaffold(root: Path, *, force: bool = False) -> list[Path]:
    targets = {source: root / target for source, target in FILES.items()}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not force:
        raise BadInput(f"would overwrite {', '.join(existing)}; move them away or pass --force")
    written = []
    for source, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((STARTER_DIR / source).read_text(encoding="utf-8"), encoding="utf-8")
        written.append(target)
    gitignore = root / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    if IGNORE_LINE not in lines:
        gitignore.write_text("\n".join([*lines, IGNORE_LINE]) + "\n", encoding="utf-8")
        written.append(gitignore)
    return written
