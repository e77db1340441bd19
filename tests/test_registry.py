"""MLflow Prompt Registry: the Action registers what a push to the default branch merged, and
`promptgate registry` lists it. Real git repositories, the offline provider, a SQLite store and
a live `mlflow server`."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from events import push
from gate_fixtures import TEXTS, jsonl
from gitrepo import RepoBuilder
from mlflow import MlflowClient
from mlflow.entities.model_registry.prompt_version import PromptVersion
from mlflow_server import MlflowServer, closed_port
from typer.testing import CliRunner

from promptgate.action import main as action_main
from promptgate.cli import app
from promptgate.registry.names import prompt_name
from promptgate.report.model import Report

REPOSITORY = "acme/prompts"

OFFLINE = "provider: { kind: offline, max_tokens: 64 }\n"
CONFIG = f"""\
version: 1
{OFFLINE.strip()}
prompts:
  - path: prompts/*.txt
    dataset: evals/{{stem}}.jsonl
  - path: prompts/*.prompt.yml
metrics:
  bleu: {{ max_drop: 2.0 }}
mlflow:
  tracking_uri: TRACKING_URI
  experiment: registry
  required: REQUIRED
"""
SUMMARY_V1 = "{{ text }}\n"
SUMMARY_V2 = "{{ text }}\n\n"  # the offline provider collapses whitespace: the gate passes
SUMMARY_V3 = "Here is a long preamble before the text itself: {{ text }}\n"  # BLEU drops: fails
CHAT = """\
model: openai/gpt-4o-mini
modelParameters:
  temperature: 0.2
  maxTokens: 64
messages:
  - role: system
    content: SYSTEM
  - role: user
    content: "{{text}}"
testData:
""" + "".join(f"  - text: {t}\n    expected: {t}\n" for t in TEXTS[:4])


@pytest.fixture(autouse=True)
def _no_tracking_uri_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def config(tracking_uri: str, *, required: bool = False) -> str:
    return CONFIG.replace("TRACKING_URI", tracking_uri).replace("REQUIRED", str(required).lower())


def chat(system: str) -> str:
    return CHAT.replace("SYSTEM", system)


def new_repository(root: Path, tracking_uri: str) -> RepoBuilder:
    builder = RepoBuilder(root)
    builder.commit(
        {
            "promptgate.yaml": config(tracking_uri),
            "prompts/summarize.txt": SUMMARY_V1,
            "evals/summarize.jsonl": jsonl(),
        },
        "Adopt promptgate",
    )
    return builder


@dataclass
class ActionRun:
    code: int
    log: str
    summary: str
    report: Report


def run_action(
    builder: RepoBuilder, payload: dict[str, object], tmp: Path, **inputs: str
) -> ActionRun:
    """The Action on a push event (no PR: nothing is posted to GitHub).

    `promptgate.action.main` is what entrypoint.py calls; it runs in this process, which saves
    MLflow's seconds of import per run (test_action.py runs the entrypoint itself).
    """
    event_path, summary = tmp / "event.json", tmp / "summary.md"
    event_path.write_text(json.dumps(payload))
    summary.write_text("")
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_WORKSPACE": str(builder.root),
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_SHA": str(payload["after"]),
        "GITHUB_STEP_SUMMARY": str(summary),
        "INPUT_CONFIG": "promptgate.yaml",
        "INPUT_FAIL-ON-REGRESSION": "true",
    }
    env.update({f"INPUT_{name.upper().replace('_', '-')}": value for name, value in inputs.items()})
    log = io.StringIO()
    saved = dict(os.environ)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    before = dict(os.environ)
    try:
        code = action_main(env, log)
        changed = {
            k for k in before.keys() | os.environ.keys() if before.get(k) != os.environ.get(k)
        }
    finally:
        os.environ.clear()
        os.environ.update(saved)
    # Only git's safe.directory (trust_workspace) and MLflow's own telemetry session id stay;
    # the MLflow settings promptgate changes for its calls are restored.
    assert {k for k in changed if not k.startswith(("GIT_CONFIG_", "_MLFLOW_TELEMETRY"))} == set()
    report = Report.model_validate_json((builder.root / ".promptgate/report.json").read_text())
    return ActionRun(code, log.getvalue(), summary.read_text(), report)


def versions(client: MlflowClient, name: str) -> dict[int, PromptVersion]:
    """Every version with its aliases (a search leaves the aliases out)."""
    found = client.search_prompt_versions(name, max_results=100)
    return {int(v.version): client.get_prompt_version(name, v.version) for v in found}


def production(client: MlflowClient, name: str) -> int | None:
    held = [number for number, v in versions(client, name).items() if "production" in v.aliases]
    return held[0] if held else None


# --- a default branch merged to four times, registered after each push --------------------


@dataclass
class History:
    builder: RepoBuilder
    tracking_uri: str
    client: MlflowClient
    commits: dict[str, str] = field(default_factory=dict)
    runs: dict[str, ActionRun] = field(default_factory=dict)
    # after each run: prompt name -> (number of versions, version holding `production`)
    states: dict[str, dict[str, tuple[int, int | None]]] = field(default_factory=dict)

    def push(self, label: str, before: str, after: str, tmp: Path) -> None:
        self.runs[label] = run_action(self.builder, push(before, after), tmp)
        self.states[label] = {
            prompt.name: (
                len(versions(self.client, prompt.name)),
                production(self.client, prompt.name),
            )
            for prompt in self.client.search_prompts()
        }


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp}/mlflow.db"
    builder = RepoBuilder(tmp / "repo")
    adopted = builder.commit(
        {
            "promptgate.yaml": config(uri),
            "prompts/summarize.txt": SUMMARY_V1,
            "prompts/old-name.txt": "Old name: {{ text }}\n",
            "prompts/retired.txt": "Retired: {{ text }}\n",
            "prompts/chat.prompt.yml": chat("Repeat the text."),
            **{f"evals/{stem}.jsonl": jsonl() for stem in ("summarize", "old-name", "new-name")},
            "evals/retired.jsonl": jsonl(),
        },
        "Adopt promptgate",
    )
    history = History(builder, uri, MlflowClient(tracking_uri=uri, registry_uri=uri))
    first = builder.commit(
        {
            "prompts/summarize.txt": SUMMARY_V2,
            "prompts/old-name.txt": "Old name:  {{ text }}\n",
            "prompts/retired.txt": "Retired:  {{ text }}\n",
            "prompts/chat.prompt.yml": chat("Repeat the text, exactly."),
        },
        "Friendlier prompts\n\nA longer body that is not the subject.",
    )
    history.push("first", adopted, first, tmp)
    history.push("rerun", adopted, first, tmp)
    second = builder.commit({"prompts/summarize.txt": SUMMARY_V3}, "A preamble for summaries")
    history.push("second", first, second, tmp)
    history.push("stale rerun", adopted, first, tmp)  # the first merge's job re-run afterwards
    builder.rename("prompts/old-name.txt", "prompts/new-name.txt")
    third = builder.commit(delete=("prompts/retired.txt",), message="Rename one, retire one")
    history.push("third", second, third, tmp)
    history.commits = {"first": first, "second": second, "third": third}
    return history


def test_a_merge_registers_each_changed_prompt_and_points_production_at_it(
    history: History,
) -> None:
    run = history.runs["first"]
    assert run.code == 0, run.log
    assert history.states["first"] == {
        "prompts.summarize.txt": (1, 1),
        "prompts.old-name.txt": (1, 1),
        "prompts.retired.txt": (1, 1),
        "prompts.chat.prompt.yml": (1, 1),
    }
    assert "prompt registry: prompts/summarize.txt → prompts.summarize.txt version 1" in run.log
    assert "### Prompt Registry" in run.summary and "prompts/summarize.txt" in run.summary


def test_a_version_carries_the_text_commit_gate_run_and_verdicts(history: History) -> None:
    first = history.runs["first"].report
    version = history.client.get_prompt_version("prompts.summarize.txt", 1)
    assert version is not None
    assert version.template == SUMMARY_V2  # registered as written: `{{ text }}` is MLflow's syntax
    assert version.variables == {"text"}
    assert version.commit_message == f"Friendlier prompts ({history.commits['first'][:7]})"
    assert version.tags == {
        "promptgate.path": "prompts/summarize.txt",
        "promptgate.commit": history.commits["first"],
        "promptgate.gate_run": first.mlflow.run_id,
        "promptgate.gate_verdict": "pass",
        "promptgate.prompt_verdict": "pass",
        "promptgate.config_hash": first.gate.config_hash if first.gate else None,
        "promptgate.prompt_hash": next(
            p.candidate_hash for p in first.prompts if p.path == "prompts/summarize.txt"
        ),
        "promptgate.repository": REPOSITORY,
    }
    assert first.mlflow.run_id and history.client.get_run(first.mlflow.run_id)


def test_the_gate_runs_link_to_the_versions_their_texts_are(history: History) -> None:
    """The merge's candidate run is linked to the version registering it made; the next gate's
    baseline run, which ran that text again, is linked to the same version."""
    first = history.runs["first"].report.mlflow
    assert first.run_id and first.experiment_id
    linked = {
        (run.data.tags["promptgate.prompt"], run.data.tags["promptgate.version"]): json.loads(
            run.data.tags.get("mlflow.linkedPrompts", "[]")
        )
        for run in history.client.search_runs(
            [first.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{first.run_id}'"
        )
    }
    version_1 = [{"name": "prompts.summarize.txt", "version": "1"}]
    assert linked[("prompts/summarize.txt", "candidate")] == version_1
    assert linked[("prompts/summarize.txt", "baseline")] == []  # its text was never registered
    second = history.runs["second"].report.mlflow
    assert second.run_id
    (baseline,) = [
        run
        for run in history.client.search_runs(
            [first.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{second.run_id}'"
        )
        if run.data.tags["promptgate.prompt"] == "prompts/summarize.txt"
        and run.data.tags["promptgate.version"] == "baseline"
    ]
    assert json.loads(baseline.data.tags["mlflow.linkedPrompts"]) == version_1


def test_a_prompt_yml_file_is_a_chat_prompt_with_the_files_model_settings(
    history: History,
) -> None:
    version = history.client.get_prompt_version("prompts.chat.prompt.yml", 1)
    assert version is not None and not version.is_text_prompt
    assert version.template == [
        {"role": "system", "content": "Repeat the text, exactly."},
        {"role": "user", "content": "{{text}}"},
    ]
    assert version.model_config == {
        "model_name": "openai/gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 64,
    }


def test_a_rerun_of_the_same_merge_adds_no_version(history: History) -> None:
    run = history.runs["rerun"]
    assert run.code == 0, run.log
    assert history.states["rerun"] == history.states["first"]
    assert "version 1 already holds this text (production)" in run.log


def test_the_next_merge_adds_a_version_and_moves_production_even_when_the_gate_fails(
    history: History,
) -> None:
    run = history.runs["second"]
    assert run.code == 1 and run.report.verdict == "fail", run.log  # the gate's exit code stands
    assert history.states["second"]["prompts.summarize.txt"] == (2, 2)
    assert history.states["second"]["prompts.chat.prompt.yml"] == (1, 1)  # not in this merge
    second = history.client.get_prompt_version("prompts.summarize.txt", 2)
    assert second is not None and second.aliases == ["production"]
    assert second.template == SUMMARY_V3
    assert second.tags["promptgate.prompt_verdict"] == "fail"
    assert second.tags["promptgate.commit"] == history.commits["second"]
    first = history.client.get_prompt_version("prompts.summarize.txt", 1)
    assert first is not None and first.aliases == []


def test_a_rerun_of_an_older_merge_does_not_roll_production_back(history: History) -> None:
    run = history.runs["stale rerun"]
    assert run.code == 0, run.log
    assert history.states["stale rerun"] == history.states["second"]
    assert f"stale (version 2 is from the newer commit {history.commits['second'][:7]})" in run.log


def test_renamed_and_deleted_prompts_keep_their_versions_and_are_tagged(history: History) -> None:
    run = history.runs["third"]
    assert run.code == 0, run.log
    state = history.states["third"]
    assert state["prompts.new-name.txt"] == (1, 1)
    assert state["prompts.old-name.txt"] == (1, 1)  # nothing is deleted, the alias stays
    assert state["prompts.retired.txt"] == (1, 1)
    old = history.client.get_prompt("prompts.old-name.txt")
    retired = history.client.get_prompt("prompts.retired.txt")
    assert old is not None and old.tags["promptgate.renamed_to"] == "prompts.new-name.txt"
    assert retired is not None and retired.tags["promptgate.deleted_in"] == history.commits["third"]


def test_registered_prompts_show_in_the_gate_experiment_and_nothing_lands_in_the_cwd(
    history: History,
) -> None:
    experiment = history.client.get_experiment_by_name("registry")
    assert experiment is not None
    prompt = history.client.get_prompt("prompts.summarize.txt")
    assert prompt is not None
    assert f",{experiment.experiment_id}," in prompt.tags["_mlflow_experiment_ids"]
    assert not (history.builder.root / "mlflow.db").exists()
    assert not (history.builder.root / "mlruns").exists()


# --- when nothing is registered, and when the registry fails -------------------------------


def test_a_push_to_another_branch_registers_nothing(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    builder = new_repository(tmp_path / "repo", uri)
    before = builder.repo.head.commit.hexsha
    after = builder.commit({"prompts/summarize.txt": SUMMARY_V2})
    run = run_action(builder, push(before, after, ref="refs/heads/feature"), tmp_path)
    assert run.code == 0, run.log
    assert run.report.mlflow.run_id  # gated and logged as before
    assert list(MlflowClient(tracking_uri=uri, registry_uri=uri).search_prompts()) == []
    assert "prompt registry" not in run.log and "Prompt Registry" not in run.summary


def test_a_prompt_name_is_its_path_spelled_as_mlflow_allows() -> None:
    assert prompt_name("prompts/summarize.txt") == "prompts.summarize.txt"
    assert prompt_name("chat/Q&A v2.prompt.yml") == "chat.Q_A_v2.prompt.yml"
    long = prompt_name("p/" + "x" * 300 + ".txt")
    assert len(long) == 200 and long != prompt_name("p/" + "x" * 301 + ".txt")


def test_two_paths_with_one_name_are_refused_not_mixed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    builder = RepoBuilder(tmp_path / "repo")
    nested = config(uri).replace("prompts/*.txt", "prompts/**/*.txt")
    before = builder.commit({"promptgate.yaml": nested, "evals/b.jsonl": jsonl()}, "Adopt")
    after = builder.commit(
        {"prompts/a.b.txt": SUMMARY_V1, "prompts/a/b.txt": SUMMARY_V2, "evals/a.jsonl": jsonl()}
    )
    run = run_action(builder, push(before, after), tmp_path)
    assert run.code == 0, run.log
    assert "prompts/a.b.txt → prompts.a.b.txt version 1 (production)" in run.log
    assert "prompts/a/b.txt → prompts.a.b.txt: conflict" in run.log
    assert "belongs to prompts/a.b.txt, which maps to the same name as prompts/a/b.txt" in run.log
    version = MlflowClient(tracking_uri=uri, registry_uri=uri).get_prompt_version(
        "prompts.a.b.txt", 1
    )
    assert version is not None and version.template == SUMMARY_V1


def test_a_prompt_the_gate_could_not_evaluate_is_not_registered(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    builder = new_repository(tmp_path / "repo", uri)
    unreachable = (
        f"provider: {{ kind: openai, base_url: 'http://127.0.0.1:{closed_port()}/v1', "
        "max_retries: 0, timeout_s: 2 }\n"
    )
    builder.commit({"promptgate.yaml": config(uri).replace(OFFLINE, unreachable)}, "Use a server")
    before = builder.repo.head.commit.hexsha
    after = builder.commit({"prompts/summarize.txt": SUMMARY_V2})
    run = run_action(builder, push(before, after), tmp_path)
    assert run.code == 3 and run.report.verdict == "error", run.log
    assert "could not evaluate it; re-run the job to register it" in run.log
    assert list(MlflowClient(tracking_uri=uri, registry_uri=uri).search_prompts()) == []


def test_a_registry_failure_is_a_warning_unless_mlflow_is_required(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    builder = new_repository(tmp_path / "repo", uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(prompt_name("prompts/summarize.txt"))  # a model took the name
    before = builder.repo.head.commit.hexsha
    after = builder.commit({"prompts/summarize.txt": SUMMARY_V2})

    warned = run_action(builder, push(before, after), tmp_path)
    assert warned.code == 0, warned.log
    assert "::warning title=promptgate%3A prompt registry::" in warned.log
    assert "Prompt Registry at" in warned.log and "could not be updated" in warned.log

    builder.commit({"promptgate.yaml": config(uri, required=True)}, "Require MLflow")
    before = builder.repo.head.commit.hexsha
    after = builder.commit({"prompts/summarize.txt": SUMMARY_V1})
    failed = run_action(builder, push(before, after), tmp_path)
    assert failed.code == 3, failed.log
    assert failed.report.verdict == "pass"  # the gate itself passed; the registry did not
    assert "::error title=promptgate%3A prompt registry::" in failed.log
    assert "mlflow.required is true" in failed.log


# --- `promptgate registry` ----------------------------------------------------------------


def registry_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["registry", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_the_cli_lists_the_registered_prompts(history: History) -> None:
    code, output = registry_cli("--mlflow-tracking-uri", history.tracking_uri, "--json")
    assert code == 0, output
    listed = {p["name"]: p for p in json.loads(output)}
    assert set(listed) == {
        "prompts.summarize.txt",
        "prompts.chat.prompt.yml",
        "prompts.old-name.txt",
        "prompts.new-name.txt",
        "prompts.retired.txt",
    }
    assert listed["prompts.summarize.txt"] | {"commit": None} == {
        "name": "prompts.summarize.txt",
        "path": "prompts/summarize.txt",
        "versions": 2,
        "latest_version": 2,
        "production_version": 2,
        "commit": None,
        "deleted_in": None,
        "renamed_to": None,
    }
    assert listed["prompts.retired.txt"]["deleted_in"] == history.commits["third"]


def test_the_cli_lists_a_prompts_versions_by_path_or_name(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(history.builder.root)  # its promptgate.yaml names the store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, output = registry_cli("prompts/summarize.txt", "--json")
    assert code == 0, output
    listed = json.loads(output)
    assert [(v["version"], v["aliases"], v["commit"]) for v in listed] == [
        (2, ["production"], history.commits["second"]),
        (1, [], history.commits["first"]),
    ]
    assert listed[0]["gate_run"] == history.runs["second"].report.mlflow.run_id
    assert listed[0]["prompt_verdict"] == "fail"

    code, table = registry_cli("prompts.summarize.txt")
    assert code == 0, table
    assert "prompt prompts.summarize.txt" in table and "production" in table
    assert history.commits["second"][:7] in table


def test_the_cli_says_when_a_prompt_is_unknown_or_the_store_unreachable(history: History) -> None:
    code, output = registry_cli("prompts/nope.txt", "--mlflow-tracking-uri", history.tracking_uri)
    assert code == 2
    assert "no prompt 'prompts.nope.txt' in the registry" in output

    unreachable = f"http://127.0.0.1:{closed_port()}"
    for listing in ([], ["prompts/summarize.txt"]):
        started = time.monotonic()
        code, output = registry_cli(*listing, "--mlflow-tracking-uri", unreachable)
        assert code == 3, output
        assert "could not be read" in output and "connection" in output
        assert time.monotonic() - started < 10


# --- over HTTP ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_merge_is_registered_on_a_tracking_server_and_listed_from_it(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    builder = new_repository(tmp_path / "repo", "sqlite:///unused.db")
    before = builder.repo.head.commit.hexsha
    after = builder.commit({"prompts/summarize.txt": SUMMARY_V2}, "Friendlier summaries")
    run = run_action(builder, push(before, after), tmp_path, mlflow_tracking_uri=mlflow_server.uri)
    assert run.code == 0, run.log
    assert run.report.mlflow.tracking_uri == mlflow_server.uri

    code, output = registry_cli(
        "prompts/summarize.txt", "--mlflow-tracking-uri", mlflow_server.uri, "--json"
    )
    assert code == 0, output
    (version,) = json.loads(output)
    assert version["aliases"] == ["production"] and version["commit"] == after
    assert version["gate_run"] == run.report.mlflow.run_id
    assert version["commit_message"] == f"Friendlier summaries ({after[:7]})"
