"""A pull request that changes ten prompts in every way a real one does, gated against the noisy
LLM stub: three regress, one is reformatted only (identical outputs), one renamed, one added,
one deleted, three reworded. Its comment is what tests/test_comment_render.py checks and what
scripts/screenshots.py photographs."""

from __future__ import annotations

from pathlib import Path

from gate_fixtures import TEXTS, PromptRepo, config_yaml, jsonl
from gitrepo import RepoBuilder
from llm_stub import LLMStub

#: Outputs longer than a line of the comment: their evidence must wrap.
LONG_TEXTS = [
    "the migration plan moves every customer account to the new billing platform in three "
    "waves, starting with the smallest accounts on the first monday of next month",
    "our support team answers most questions within two hours during the week, and within "
    "one working day at weekends and on public holidays across every region we serve",
    "before the release goes out, each service owner confirms that the dashboards, alerts "
    "and runbooks for their service describe the new version and its rollback steps",
    "the survey shows that most readers prefer short articles with clear headings, a summary "
    "at the top, and links to the longer reports for anyone who wants the details",
]
EXAMPLES = [*TEXTS, *LONG_TEXTS]
INSTRUCTION = "Restate the text below exactly."
REWORDED = "Repeat the following text word for word."
TEMPERATURE_ZERO = "modelParameters:\n  temperature: 0\n"
REGRESSED = ("prompts/billing.txt", "prompts/support.txt", "prompts/release.txt")
PASSING = ("prompts/survey.txt", "prompts/weather.txt", "prompts/museum.txt")


def _prompt(name: str, instruction: str = INSTRUCTION) -> str:
    return f"{instruction} ({name})\n{{{{ text }}}}\n"


def _prompt_yml(name: str, user: str = "'{{ text }}'") -> str:
    return (
        f"name: {name}\n{TEMPERATURE_ZERO}messages:\n"
        f"  - role: system\n    content: '{INSTRUCTION}'\n"
        f"  - role: user\n    content: {user}\n"
    )


def ten_prompt_pr(workdir: Path, stub: LLMStub) -> PromptRepo:
    """The repository, its `main` and its PR branch `pr`, against `stub` (sampling noise on)."""
    prompts = (
        "  - path: prompts/*.txt\n    dataset: evals/shared.jsonl\n"
        "  - path: prompts/*.prompt.yml\n    dataset: evals/shared.jsonl\n"
    )
    config = config_yaml(
        stub, workdir / "mlflow.db", prompts=prompts, provider="  temperature: 0.7\n"
    )
    base = {path: _prompt(path) for path in (*REGRESSED, *PASSING)}
    builder = RepoBuilder(workdir / "repo")
    builder.commit(
        {
            "promptgate.yaml": config,
            "evals/shared.jsonl": jsonl(EXAMPLES),
            **base,
            "prompts/format.prompt.yml": _prompt_yml("format"),
            "prompts/old-name.txt": _prompt("renamed"),
            "prompts/retired.txt": _prompt("retired"),
        },
        "ten prompts",
    )
    builder.branch("pr")
    builder.rename("prompts/old-name.txt", "prompts/new-name.txt")
    drops = {"prompts/billing.txt": 0.5, "prompts/support.txt": 0.3, "prompts/release.txt": 0.35}
    builder.commit(
        {
            **{
                path: f"{INSTRUCTION} ({path})\n[stub-regression drop={drop}]\n{{{{ text }}}}\n"
                for path, drop in drops.items()
            },
            **{path: _prompt(path, REWORDED) for path in PASSING},
            # whitespace only, at temperature 0: both versions answer the same
            "prompts/format.prompt.yml": _prompt_yml("format", "'{{text}}'"),
            "prompts/greeting.txt": _prompt("greeting"),
        },
        "change ten prompts",
        delete=("prompts/retired.txt",),
    )
    return PromptRepo(builder, workdir)
