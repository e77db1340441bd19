"""The gate end to end: real git repositories, the LLM stub over HTTP, a sqlite MLflow store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fresh_python import python_stdout
from gate_fixtures import API_KEY, API_KEY_ENV, TEXTS, PromptRepo, config_yaml, jsonl
from gitrepo import RepoBuilder
from llm_stub import Fault, LLMStub

from promptgate.report.markdown import render_markdown

GOOD = "{{ text }}\n"
CHATTY = "Well, let me think about this one very carefully and at great length: {{ text }}\n"


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def make_repo(tmp_path: Path, stub: LLMStub, monkeypatch: pytest.MonkeyPatch):
    """A repo whose main branch has the given prompts (+ eval sets), checked out on branch `pr`."""
    monkeypatch.setenv(API_KEY_ENV, API_KEY)

    def build(prompt_files: dict[str, str], **config: str) -> PromptRepo:
        builder = RepoBuilder(tmp_path / "repo")
        files = {"promptgate.yaml": config_yaml(stub, tmp_path / "mlflow.db", **config)}
        for path, text in prompt_files.items():
            files[path] = text
            stem = Path(path).name.split(".")[0]
            files.setdefault(f"evals/{stem}.jsonl", jsonl())
        builder.commit(files, "prompts")
        builder.branch("pr")
        return PromptRepo(builder, tmp_path)

    return build


def test_no_prompt_change_passes_without_a_single_call(make_repo, stub: LLMStub) -> None:
    repo = make_repo({"prompts/a.txt": GOOD})
    repo.builder.commit({"README.md": "docs only"})
    run = repo.gate()
    assert run.exit_code == 0
    assert run.report.verdict == "pass" and run.report.prompts == []
    assert stub.request_count == 0 and run.report.calls.requested == 0


def test_a_whitespace_only_change_has_zero_delta(make_repo) -> None:
    repo = make_repo({"prompts/a.txt": GOOD})
    repo.builder.commit({"prompts/a.txt": "{{ text }}   \n"})
    run = repo.gate()
    assert run.exit_code == 0
    (prompt,) = run.report.prompts
    assert prompt.change == "modified" and prompt.verdict == "pass"
    for result in prompt.metrics.values():
        assert result.delta == 0.0 and result.ci_low == 0.0 and result.ci_high == 0.0


def test_a_regression_fails_the_gate_with_the_worst_examples_shown(
    make_repo, stub: LLMStub
) -> None:
    repo = make_repo({"prompts/a.txt": GOOD})
    repo.builder.commit({"prompts/a.txt": CHATTY})
    run = repo.gate()
    assert run.exit_code == 1
    (prompt,) = run.report.prompts
    assert prompt.verdict == "fail" and prompt.examples == len(TEXTS)
    bleu = prompt.metrics["bleu"]
    assert bleu.baseline == pytest.approx(100.0) and bleu.delta is not None and bleu.delta < -2.0
    assert bleu.ci_high is not None and bleu.ci_high < 0 and bleu.status == "fail"
    assert prompt.top_regressions and prompt.top_regressions[0].candidate_output.startswith(
        "Well, let me"
    )
    assert prompt.diff is not None and "+Well, let me think" in prompt.diff
    assert run.report.calls.made == 2 * len(TEXTS)
    assert all(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in stub.requests)
    assert "fail" in (repo.workdir / "report.md").read_text().lower()


def test_an_improvement_passes_with_a_positive_delta(make_repo) -> None:
    repo = make_repo({"prompts/a.txt": CHATTY})
    repo.builder.commit({"prompts/a.txt": GOOD})
    run = repo.gate()
    assert run.exit_code == 0
    (prompt,) = run.report.prompts
    assert prompt.verdict == "pass"
    assert prompt.metrics["rougeL"].delta is not None and prompt.metrics["rougeL"].delta > 0.1


def test_a_renamed_prompt_is_compared_with_its_old_path(make_repo) -> None:
    repo = make_repo({"prompts/a.txt": GOOD})
    repo.builder.commit({"evals/b.jsonl": jsonl()})
    repo.builder.rename("prompts/a.txt", "prompts/b.txt")
    run = repo.gate()
    (prompt,) = run.report.prompts
    assert (prompt.path, prompt.old_path, prompt.change) == (
        "prompts/b.txt",
        "prompts/a.txt",
        "renamed",
    )
    assert prompt.metrics["bleu"].baseline == pytest.approx(100.0)
    assert prompt.metrics["bleu"].delta == 0.0


def test_an_added_prompt_is_new_and_a_deleted_one_removed(make_repo, stub: LLMStub) -> None:
    repo = make_repo({"prompts/old.txt": GOOD})
    repo.builder.commit(
        {"prompts/fresh.txt": "Q: {{ text }}\n", "evals/fresh.jsonl": jsonl()},
        delete=("prompts/old.txt",),
    )
    run = repo.gate()
    assert run.exit_code == 0
    verdicts = {p.path: (p.change, p.verdict) for p in run.report.prompts}
    assert verdicts == {
        "prompts/fresh.txt": ("added", "new"),
        "prompts/old.txt": ("deleted", "removed"),
    }
    fresh = next(p for p in run.report.prompts if p.path == "prompts/fresh.txt")
    assert fresh.metrics["bleu"].baseline is None and fresh.metrics["bleu"].candidate is not None
    assert stub.request_count == len(TEXTS)  # the candidate side only


def test_of_several_prompts_only_the_regressed_one_fails(make_repo) -> None:
    repo = make_repo({"prompts/a.txt": GOOD, "prompts/b.txt": GOOD, "prompts/c.txt": GOOD})
    repo.builder.commit(
        {"prompts/a.txt": "{{ text }} \n", "prompts/b.txt": CHATTY, "prompts/c.txt": "{{text}}"}
    )
    run = repo.gate()
    assert run.exit_code == 1
    assert {p.path: p.verdict for p in run.report.prompts} == {
        "prompts/a.txt": "pass",
        "prompts/b.txt": "fail",
        "prompts/c.txt": "pass",
    }


PROMPT_YML = """\
model: stub-model
modelParameters:
  maxTokens: 64
messages:
  - role: system
    content: Repeat the text.
  - role: user
    content: "{{text}}"
testData:
"""


def test_a_github_models_prompt_file_uses_its_test_data(make_repo, stub: LLMStub) -> None:
    test_data = "".join(f"  - text: {t}\n    expected: {t}\n" for t in TEXTS[:6])
    repo = make_repo(
        {"prompts/s.prompt.yml": PROMPT_YML + test_data},
        prompts="  - path: prompts/*.prompt.yml\n",
    )
    repo.builder.commit(
        {
            "prompts/s.prompt.yml": (PROMPT_YML + test_data).replace(
                '"{{text}}"', '"Answer: {{text}}"'
            )
        }
    )
    run = repo.gate()
    (prompt,) = run.report.prompts
    assert (
        prompt.examples == 6
        and prompt.metrics["bleu"].delta is not None
        and prompt.metrics["bleu"].delta < 0
    )
    system_turns = {r.body["messages"][0]["content"] for r in stub.requests}
    assert system_turns == {"Repeat the text."}
    assert {r.body["max_tokens"] for r in stub.requests} == {64}


def test_a_missing_variable_is_bad_input_before_any_call(make_repo, stub: LLMStub) -> None:
    repo = make_repo({"prompts/a.txt": GOOD})
    repo.builder.commit({"prompts/a.txt": "{{ text }} for {{ audience }}\n"})
    run = repo.gate()
    assert run.exit_code == 2 and run.report.verdict == "error"
    assert "audience" in run.report.errors[0] and "prompts/a.txt" in run.report.errors[0]
    assert stub.request_count == 0


def test_a_bad_eval_set_line_is_bad_input_naming_file_and_line(make_repo) -> None:
    repo = make_repo({"prompts/a.txt": GOOD})
    repo.builder.commit({"prompts/a.txt": CHATTY, "evals/a.jsonl": jsonl()[:-1] + "\n{oops\n"})
    run = repo.gate()
    assert run.exit_code == 2
    assert f"evals/a.jsonl:{len(TEXTS) + 1}:" in run.report.errors[0]


def test_a_provider_that_always_fails_is_an_error_never_a_pass(make_repo, stub: LLMStub) -> None:
    repo = make_repo({"prompts/a.txt": GOOD}, max_retries=1)
    repo.builder.commit({"prompts/a.txt": "{{ text }} \n"})
    stub.fail_always = 500
    run = repo.gate()
    assert run.exit_code == 3 and run.report.verdict == "error"
    assert run.report.prompts[0].verdict == "error"
    assert run.report.calls.failed > 0 and run.report.errors


@pytest.mark.parametrize(
    ("given_up", "share", "exit_code"),
    [(1, 0.0, 3), (1, 0.1, 1), (2, 0.1, 3)],
    ids=["any-failure-is-an-error", "one-of-12-allowed", "two-of-12-too-many"],
)
def test_a_share_of_failed_examples_is_allowed_only_when_configured(
    make_repo, stub: LLMStub, given_up: int, share: float, exit_code: int
) -> None:
    gate = f"gate:\n  max_failed_share: {share}\n" if share else ""
    repo = make_repo({"prompts/a.txt": GOOD}, max_retries=0, extra=gate)
    repo.builder.commit({"prompts/a.txt": CHATTY})
    stub.script(*[Fault.http_error(500)] * given_up)
    run = repo.gate()
    assert run.exit_code == exit_code and run.report.calls.failed == given_up
    (prompt,) = run.report.prompts
    if exit_code == 3:
        assert run.report.verdict == prompt.verdict == "error" and not prompt.metrics
        assert f"{given_up} of {len(TEXTS)} examples" in (prompt.error or "")
    else:  # scored on the other examples, the regression still found, the gap said
        assert prompt.verdict == "fail" and len(prompt.failed_examples) == given_up
        assert prompt.examples == len(TEXTS) - given_up
        assert "left out of both sides" in render_markdown(run.report)


def test_transient_429s_and_5xx_are_recovered(make_repo, stub: LLMStub) -> None:
    repo = make_repo({"prompts/a.txt": GOOD})
    repo.builder.commit({"prompts/a.txt": CHATTY})
    stub.script(
        Fault.http_error(429, retry_after="0"),
        Fault.http_error(503),
        Fault.http_error(429),
        Fault.http_error(500),
    )
    run = repo.gate()
    assert run.exit_code == 1  # the regression is still found
    assert run.report.calls.failed == 0 and run.report.calls.retried == 4


def test_a_second_run_is_answered_entirely_from_the_cache(make_repo, stub: LLMStub) -> None:
    repo = make_repo({"prompts/a.txt": GOOD})
    repo.builder.commit({"prompts/a.txt": CHATTY})
    first = repo.gate()
    seen = stub.request_count
    second = repo.gate()
    assert stub.request_count == seen
    assert (
        second.report.calls.made == 0
        and second.report.calls.cached == second.report.calls.requested
    )
    assert second.report.prompts[0].metrics == first.report.prompts[0].metrics
    # a new push on the PR re-uses the base side
    repo.builder.commit({"prompts/a.txt": CHATTY + "More.\n"})
    third = repo.gate()
    assert third.report.calls.made == len(TEXTS)


def test_the_pr_cannot_loosen_its_own_thresholds(make_repo, tmp_path: Path, stub: LLMStub) -> None:
    repo = make_repo({"prompts/a.txt": GOOD})
    loose = config_yaml(stub, tmp_path / "mlflow.db", metrics="  bleu: { max_drop: 100 }\n")
    repo.builder.commit({"prompts/a.txt": CHATTY, "promptgate.yaml": loose})
    run = repo.gate()
    assert run.exit_code == 1 and run.report.config_changed
    assert run.report.gate is not None and run.report.gate.config_source == "base"
    changes = {c.setting: (c.base, c.head, c.loosens) for c in run.report.config_changes}
    assert changes["metrics.bleu.max_drop"] == (2.0, 100.0, True)
    assert changes["metrics.rougeL.max_drop"] == (0.02, None, True)
    comment = render_markdown(run.report)
    assert "| metrics.bleu.max&#95;drop | 2.0 | 100.0 | ⚠️ loosens the gate |" in comment


def test_the_gate_is_logged_as_nested_mlflow_runs(make_repo, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    repo = make_repo({"prompts/a.txt": GOOD})
    repo.builder.commit({"prompts/a.txt": CHATTY})
    run = repo.gate()
    assert run.report.mlflow.run_id and run.report.mlflow.warning is None
    client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}")
    parent = client.get_run(run.report.mlflow.run_id)
    assert parent.data.tags["promptgate.verdict"] == "fail"
    children = client.search_runs(
        [run.report.mlflow.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 2  # baseline and candidate of the one prompt


def test_semantic_similarity_runs_with_the_real_model(make_repo) -> None:
    repo = make_repo(
        {"prompts/a.txt": GOOD},
        metrics="  semantic: { max_drop: 0.02 }\n",
    )
    repo.builder.commit({"prompts/a.txt": CHATTY})
    run = repo.gate()
    semantic = run.report.prompts[0].metrics["semantic"]
    assert semantic.baseline == pytest.approx(1.0, abs=1e-4)
    assert semantic.candidate is not None and 0.3 < semantic.candidate < 0.99
    assert run.report.gate is not None and "MiniLM" in run.report.gate.signatures["semantic"]


def test_a_prompt_without_an_eval_set_is_bad_input_pointing_at_the_config(
    make_repo, stub: LLMStub
) -> None:
    repo = make_repo({"prompts/a.txt": GOOD}, prompts="  - path: prompts/*.txt\n")
    repo.builder.commit({"prompts/a.txt": CHATTY})
    run = repo.gate()
    assert run.exit_code == 2 and stub.request_count == 0
    assert (
        run.report.errors[0].startswith("promptgate.yaml") and "no eval set" in run.report.errors[0]
    )


def _offline_pr_repo(tmp_path: Path, metrics: str) -> Path:
    """main with one plain prompt and the offline provider; branch pr prefixes it with "Say: "."""
    builder = RepoBuilder(tmp_path / "repo")
    builder.commit(
        {
            "promptgate.yaml": (
                "version: 1\nprovider: { kind: offline, max_tokens: 64 }\n"
                "prompts:\n  - path: prompts/a.txt\n    dataset: evals/a.jsonl\n"
                f"metrics:\n{metrics}"
            ),
            "prompts/a.txt": "{{ text }}\n",
            "evals/a.jsonl": jsonl(TEXTS),
        }
    )
    builder.branch("pr")
    builder.commit({"prompts/a.txt": "Say: {{ text }}\n"})
    return builder.root


def test_the_gates_process_never_imports_numpy_or_a_metric_library(tmp_path: Path) -> None:
    """They load in the scoring worker: in the gate's process they would delay its first call."""
    import json

    repo = _offline_pr_repo(tmp_path, "  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n")
    program = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from promptgate.gate import evaluate\n"
        "from promptgate.request import GateRequest\n"
        f"result = evaluate(GateRequest(repo=Path({str(repo)!r}), base='main', "
        "head='pr', use_cache=False))\n"
        "heavy = ('numpy', 'sacrebleu', 'rouge_score', 'nltk', 'promptgate.compare', "
        "'promptgate.metrics.base', 'promptgate.scoring_worker')\n"
        "print(json.dumps({'verdict': result.report.verdict, "
        "'metrics': sorted(result.report.prompts[0].metrics), "
        "'loaded': [name for name in heavy if name in sys.modules]}))\n"
    )
    stdout = python_stdout(program, timeout=120)
    outcome = json.loads(stdout.strip().splitlines()[-1])
    assert outcome["metrics"] == ["bleu", "rougeL"]  # scored, in the worker
    assert outcome["loaded"] == []


def test_the_gate_run_inside_a_multiprocessing_worker_lets_that_worker_exit(
    tmp_path: Path,
) -> None:
    """A Pool worker exits without atexit handlers, then joins its children: the scoring
    process must already be stopping, or the worker (and the program) waits forever."""
    import subprocess
    import sys

    repo = _offline_pr_repo(tmp_path, "  rougeL: { max_drop: 0.02 }\n")
    program = (
        "import multiprocessing\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from pathlib import Path\n"
        "def judge(repo):\n"
        "    from promptgate.gate import evaluate\n"
        "    from promptgate.request import GateRequest\n"
        "    request = GateRequest(repo=Path(repo), base='main', head='pr', use_cache=False)\n"
        "    return evaluate(request).report.verdict\n"
        "if __name__ == '__main__':\n"
        "    spawn = multiprocessing.get_context('spawn')\n"
        "    with ProcessPoolExecutor(1, mp_context=spawn, max_tasks_per_child=1) as pool:\n"
        f"        print(pool.submit(judge, {str(repo)!r}).result())\n"
        "    print('joined')  # leaving the block waited for the worker to exit\n"
    )
    script = tmp_path / "in_a_pool.py"
    script.write_text(program)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["fail", "joined"]  # "Say: " costs ROUGE-L more than 0.02
