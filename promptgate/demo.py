"""`promptgate demo`: a small repository with a PR branch that regresses a prompt, gated offline.

The offline provider is an echo, not an LLM: it answers with the last user message. That is
enough to show the whole gate (diff, calls, cache, scores, statistics, MLflow, reports) anywhere.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import git
from rich.console import Console

from promptgate.errors import ExitCode
from promptgate.request import GateRequest

DEMO_AUTHOR = git.Actor("promptgate demo", "demo@promptgate.invalid")

CONFIG = """\
version: 1
provider:
  kind: offline            # a deterministic echo, NOT an LLM: the demo runs anywhere
  model: offline-echo
prompts:
  - path: prompts/*.prompt.yml
    dataset: evals/{stem}.jsonl
  - path: prompts/*.txt
    dataset: evals/{stem}.jsonl
metrics:
  bleu:     { max_drop: 2.0 }
  rougeL:   { max_drop: 0.02 }
  semantic: { max_drop: 0.02 }
gate:
  confidence: 0.95
mlflow:
  tracking_uri: sqlite:///{mlflow_db}
  experiment: promptgate-demo
"""

SUMMARIZE_V1 = """\
name: Ticket summary
model: offline-echo
messages:
  - role: system
    content: You summarize support tickets in one sentence for the on-call engineer.
  - role: user
    content: "{{ticket}}"
"""

# The PR's "improvement": a chatty preamble that the model now repeats into every answer.
SUMMARIZE_V2 = SUMMARIZE_V1.replace(
    'content: "{{ticket}}"',
    'content: "Hello! Please read the following ticket very carefully and then write a friendly, '
    'detailed answer for our valued customer: {{ticket}}"',
)

REPLY_V1 = "{{ phrase }}\n"
REPLY_V2 = "{{ phrase }}  \n"  # whitespace only: the gate must see no difference

TICKETS = [
    ("login-500", "Every login attempt returns HTTP 500 for users on the EU cluster since 09:00."),
    ("slow-export", "CSV export of large projects takes more than ten minutes and then times out."),
    (
        "billing-dup",
        "The customer was charged twice for the November invoice after a payment retry.",
    ),
    ("sso-loop", "SAML single sign-on redirects users back to the login page in an endless loop."),
    ("mobile-crash", "The Android app crashes on start-up after updating to version 4.2.0."),
    ("webhook-delay", "Webhooks for new orders arrive with a delay of up to forty minutes."),
    ("password-reset", "Password reset emails are not delivered to addresses at outlook.com."),
    ("dashboard-blank", "The analytics dashboard shows a blank page in Safari 17 on macOS."),
    ("api-rate", "Partners hit the API rate limit at 100 requests per minute instead of 1000."),
    ("invoice-pdf", "Invoice PDFs render the company address in the wrong language."),
    ("search-stale", "Search results do not include documents uploaded in the last two hours."),
    ("2fa-sms", "Two-factor SMS codes arrive after they have already expired for UK numbers."),
]

PHRASES = [
    ("greeting", "Good morning, how can I help you today?"),
    ("closing", "Thank you for contacting support, have a great day."),
    ("wait", "Please wait while I look into your account."),
    ("escalate", "I have escalated your ticket to our engineering team."),
    ("refund", "Your refund has been issued and will arrive within five days."),
]


def build_demo_repo(root: Path) -> git.Repo:
    """main: two prompts and their eval sets. Branch `pr`: one prompt regressed, one reformatted."""
    repo = git.Repo.init(root, initial_branch="main")
    mlflow_db = (root.parent / "mlflow.db").as_posix()
    files = {
        "promptgate.yaml": CONFIG.replace("{mlflow_db}", mlflow_db),
        "prompts/summarize.prompt.yml": SUMMARIZE_V1,
        "prompts/reply.txt": REPLY_V1,
        "evals/summarize.jsonl": _jsonl(
            {"id": i, "vars": {"ticket": t}, "expected": t} for i, t in TICKETS
        ),
        "evals/reply.jsonl": _jsonl(
            {"id": i, "vars": {"phrase": p}, "expected": p} for i, p in PHRASES
        ),
    }
    _commit(repo, files, "Add prompts and eval sets")
    repo.create_head("pr").checkout()
    _commit(
        repo,
        {"prompts/summarize.prompt.yml": SUMMARIZE_V2, "prompts/reply.txt": REPLY_V2},
        "Make the ticket summary friendlier",
    )
    return repo


def _jsonl(records: Iterable[dict[str, object]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def _commit(repo: git.Repo, files: dict[str, str], message: str) -> None:
    root = Path(str(repo.working_tree_dir))
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    repo.index.add(list(files))
    repo.index.commit(message, author=DEMO_AUTHOR, committer=DEMO_AUTHOR)


def run_demo(directory: Path | None, console: Console) -> int:
    """Exit 0 when the gate catches the demo's regression (it exits 1 for such a PR in CI)."""
    from promptgate.cli import execute

    workdir = directory or Path(tempfile.mkdtemp(prefix="promptgate-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    repo_dir = workdir / "repo"
    build_demo_repo(repo_dir)
    report_json, report_md = workdir / "report.json", workdir / "report.md"
    console.print(f"[bold]promptgate demo[/]: example repository at {repo_dir}")
    console.print(
        "branch [cyan]pr[/] regresses prompts/summarize.prompt.yml and reformats prompts/reply.txt"
    )
    console.print("provider: [yellow]offline echo[/] (deterministic, not an LLM)\n")
    request = GateRequest(
        repo=repo_dir,
        base="main",
        head="pr",
        report_json=report_json,
        report_md=report_md,
        cache_path=workdir / "cache.sqlite3",
    )
    code = execute(request, console)
    console.print(f"\nJSON report:     {report_json}\nMarkdown report: {report_md}")
    console.print(f"MLflow store:    sqlite:///{(workdir / 'mlflow.db').as_posix()}")
    console.print(
        f"  browse it:     mlflow ui --backend-store-uri sqlite:///{(workdir / 'mlflow.db').as_posix()}"
    )
    if code == ExitCode.FAILED:
        console.print("\n[bold green]demo OK[/]: the gate failed the regressing PR (exit 1 in CI).")
        return 0
    console.print(f"\n[bold red]demo did not behave as expected[/]: the gate exited {code}.")
    return code or 1
