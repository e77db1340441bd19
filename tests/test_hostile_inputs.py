"""A PR's files are hostile input: a template, an eval set or a git object it commits can neither
stall the job, exhaust its memory nor crash promptgate. Each is bad input (exit 2) that names
the file, and the line where there is one.

Every attack is built as a real git repository and judged by `promptgate run` in a subprocess
with a timeout, against the offline provider.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from gate_fixtures import TEXTS, jsonl
from gitrepo import AUTHOR, RepoBuilder

#: Generous: each attack ends in well under a second or two; a stall ends in this.
TIMEOUT_S = 60
GOOD_PROMPT = "Say: {{ text }}\n"


@dataclass
class Run:
    exit_code: int
    stderr: str
    stdout: str
    report: str


def _config(prompts: str, tmp_path: Path) -> str:
    return (
        "version: 1\n"
        "provider: { kind: offline, max_tokens: 64 }\n"
        f"prompts:\n{prompts}"
        "metrics:\n  rougeL: { max_drop: 0.02 }\n"
        f"mlflow: {{ tracking_uri: 'sqlite:///{(tmp_path / 'mlflow.db').as_posix()}' }}\n"
    )


PLAIN_PROMPTS = "  - path: prompts/*.txt\n    dataset: evals/{stem}.jsonl\n"


def _repo(tmp_path: Path, files: dict[str, str], prompts: str = PLAIN_PROMPTS) -> RepoBuilder:
    """main holds the config and `files`; branch `pr` is checked out, ready for the attack."""
    builder = RepoBuilder(tmp_path / "repo")
    builder.commit({"promptgate.yaml": _config(prompts, tmp_path), **files}, "main")
    builder.branch("pr")
    return builder


def _gate(builder: RepoBuilder) -> Run:
    report = builder.root.parent / "report.json"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "promptgate", "run", "--repo", str(builder.root)]
    done = subprocess.run(
        [*command, "--base", "main", "--head", "pr", "--no-cache", "--report-json", str(report)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,  # a stall fails the test here
        env={**os.environ, "COLUMNS": "2000", "HF_HUB_OFFLINE": "1"},
        cwd=builder.root.parent,
    )
    text = report.read_text() if report.exists() else ""
    return Run(done.returncode, done.stderr, done.stdout, text)


def _assert_bad_input(run: Run, place: str, *words: str) -> None:
    assert run.exit_code == 2, run.stderr + run.stdout
    assert place in run.stderr, run.stderr
    for word in words:
        assert word in run.stderr, run.stderr


def _pr_changes_prompt(tmp_path: Path, template: str) -> Run:
    builder = _repo(tmp_path, {"prompts/a.txt": GOOD_PROMPT, "evals/a.jsonl": jsonl(TEXTS[:3])})
    builder.commit({"prompts/a.txt": template}, "the attack")
    return _gate(builder)


# -- templates are bounded ------------------------------------------------------------------

STALLS = {
    "a loop over the list it appends to": (
        "{% set l=[1] %}{% for x in l %}{{ l.append(x) }}{% endfor %}",
        "sandbox forbids",
    ),
    "lipsum of a hundred thousand paragraphs": ("{{ lipsum(100000) }}", "lipsum"),
    "a megabyte written a hundred thousand times": (
        "{% set x='a'*1000000 %}{% for i in range(100000) %}{{x}}{% endfor %}",
        "1,000,000 characters",
    ),
    "nested loops with no output": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "steps",
    ),
    "a recursive macro that fans out": (
        "{% macro m(n) %}{% if n %}{{ m(n-1) }}{{ m(n-1) }}{% endif %}{% endmacro %}{{ m(40) }}",
        "template stopped",
    ),
    "a string doubled forty times": (
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
        "template stopped",
    ),
    "nested lists of shared megabyte strings written out": (
        "{% set x='a'*1000000 %}{% set a=[x,x,x,x,x,x,x,x,x,x] %}{% set b=[a,a,a,a,a,a,a,a,a,a] %}"
        "{% set c=[b,b,b,b,b,b,b,b,b,b] %}{{ c }}",
        "template stopped",
    ),
    "a macro buffering a gigabyte": (
        "{% macro m() %}{% for i in range(1000) %}{{ 'a'*1000000 }}{% endfor %}{% endmacro %}"
        "{{ m()|length }}",
        "template stopped",
    ),
    # Linear: about 0.3 s here. Jinja2's own sum (quadratic) took 28 s, past the deadline.
    "lists summed quadratically": ("{{ ([['']]*100000)|sum(start=[])|length * 0 }}", ""),
    "a message of two megabytes": ("{{ 'a'*1000000 }}{{ 'b'*1000000 }}", "1,000,000 characters"),
}


@pytest.mark.parametrize("attack", list(STALLS))
def test_a_template_that_would_stall_or_fill_memory_is_bad_input(
    tmp_path: Path, attack: str
) -> None:
    template, words = STALLS[attack]
    run = _pr_changes_prompt(tmp_path, template)
    if attack == "lists summed quadratically":  # bounded and linear now: it simply renders
        assert run.exit_code in (0, 1), run.stderr
        return
    _assert_bad_input(run, "prompts/a.txt", words)


WIDTHS = [
    "{{ '%0999999999d'|format(1) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '%.999999999f' % 1.5 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:{w}}'.format(1, w=999999999) }}",
    "{{ '{a:>999999999}'.format_map({'a': 1}) }}",
    "{{ 'a'.center(999999999) }}",
    "{{ 'a'.ljust(999999999) }}",
    "{{ 'a'.rjust(999999999) }}",
    "{{ 'a'.zfill(999999999) }}",
    "{{ ('\\t' * 1000000).expandtabs(1000) }}",
    "{{ ('a' * 1000000).replace('a', 'b' * 1000) }}",
    "{{ (1).to_bytes(999999999, 'big') }}",
    "{{ 'a'|center(999999999) }}",
    "{{ ('a\\n' * 500000)|indent(1000) }}",
    "{{ ('a ' * 500000)|wordwrap(1, wrapstring='x' * 1000) }}",
    "{{ ('a' * 1000000)|replace('a', 'b' * 1000) }}",
    "{{ [1]|batch(999999999, 'x')|list }}",
]


@pytest.mark.parametrize("template", WIDTHS)
def test_a_huge_width_or_count_is_bad_input_at_its_line(tmp_path: Path, template: str) -> None:
    run = _pr_changes_prompt(tmp_path, "Say:\n" + template + "\n")
    _assert_bad_input(run, "prompts/a.txt:2:", "template stopped")


def test_ordinary_formatting_and_filters_still_render(tmp_path: Path) -> None:
    template = (
        "{{ '%-6s|%05.1f' % ('a', 2.25) }} {{ '{:>4}'.format('b') }} {{ 'c'|center(5) }} "
        "{% for w in text.split()[:3] %}{{ w|upper }}{{ '' if loop.last else ',' }}{% endfor %} "
        "{{ [[1], [2]]|sum(start=[]) }} {{ text|wordwrap(20)|indent(2) }}\n"
    )
    run = _pr_changes_prompt(tmp_path, template)
    assert run.exit_code in (0, 1), run.stderr
    assert json.loads(run.report)["prompts"][0]["examples"] == 3


# -- YAML alias bombs ----------------------------------------------------------------------


def _billion_laughs(indent: str) -> str:
    """Nine levels of nine aliases: ~10^9 items once every alias is written out."""
    lines = [f'{indent}l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        aliases = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"{indent}l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_in_an_eval_set_is_bad_input_at_its_line(tmp_path: Path) -> None:
    builder = _repo(
        tmp_path,
        {"prompts/a.txt": GOOD_PROMPT, "evals/a.yaml": "- expected: hi\n  vars: {text: hi}\n"},
        prompts="  - path: prompts/*.txt\n    dataset: evals/{stem}.yaml\n",
    )
    bomb = "- expected: hi\n  vars:\n    text: hi\n" + _billion_laughs("    ")
    builder.commit({"prompts/a.txt": "Now say: {{ text }}\n", "evals/a.yaml": bomb})
    run = _gate(builder)
    _assert_bad_input(run, "evals/a.yaml:9:", "alias")  # l5: the first level past the cap


def test_a_yaml_alias_bomb_in_a_prompt_file_is_bad_input_naming_it(tmp_path: Path) -> None:
    prompt = (
        "messages:\n  - role: user\n    content: 'Say: {{ text }}'\n"
        "testData:\n  - text: hi\n    expected: hi\n"
    )
    builder = _repo(
        tmp_path, {"prompts/a.prompt.yml": prompt}, prompts="  - path: prompts/*.prompt.yml\n"
    )
    builder.commit({"prompts/a.prompt.yml": prompt + "    bomb:\n" + _billion_laughs("      ")})
    run = _gate(builder)
    _assert_bad_input(run, "prompts/a.prompt.yml:13:", "alias")  # l5
    assert "MemoryError" not in run.stderr


# -- odd git objects -------------------------------------------------------------------------


def _gitlink(builder: RepoBuilder, path: str) -> None:
    """Commit `path` as a submodule entry (mode 160000) pointing at some commit."""
    target = builder.repo.head.commit.hexsha
    builder.repo.git.rm("--cached", "-q", path)
    builder.repo.git.update_index("--add", "--cacheinfo", f"160000,{target},{path}")
    builder.repo.index.update()  # GitPython's index object re-reads what git wrote
    builder.repo.index.commit(f"{path} as a gitlink", author=AUTHOR, committer=AUTHOR)


def test_a_prompt_that_is_a_gitlink_is_bad_input_naming_it(tmp_path: Path) -> None:
    builder = _repo(tmp_path, {"prompts/a.txt": GOOD_PROMPT, "evals/a.jsonl": jsonl(TEXTS[:3])})
    _gitlink(builder, "prompts/a.txt")
    run = _gate(builder)
    _assert_bad_input(run, "prompts/a.txt", "submodule")
    assert "internal error" not in run.stderr


def test_an_eval_set_that_is_a_gitlink_is_bad_input_naming_it(tmp_path: Path) -> None:
    builder = _repo(tmp_path, {"prompts/a.txt": GOOD_PROMPT, "evals/a.jsonl": jsonl(TEXTS[:3])})
    builder.commit({"prompts/a.txt": "Now say: {{ text }}\n"})
    _gitlink(builder, "evals/a.jsonl")
    run = _gate(builder)
    _assert_bad_input(run, "evals/a.jsonl", "submodule")


def _symlink(builder: RepoBuilder, path: str, target: Path) -> None:
    link = builder.root / path
    link.unlink()
    link.symlink_to(target)
    builder.repo.index.add([path])
    builder.repo.index.commit(f"{path} -> {target}", author=AUTHOR, committer=AUTHOR)


CANARY = "outside-the-repository-3c1e"


@pytest.mark.parametrize("path", ["prompts/a.txt", "evals/a.jsonl"])
def test_a_symlink_is_bad_input_and_never_read_through(tmp_path: Path, path: str) -> None:
    """git stores a link's target path as its blob; promptgate reads committed files only, so a
    link (here to a readable file outside the repository) is refused, never followed."""
    outside = tmp_path / "outside.jsonl"
    outside.write_text(json.dumps({"vars": {"text": CANARY}, "expected": CANARY}) + "\n")
    builder = _repo(tmp_path, {"prompts/a.txt": GOOD_PROMPT, "evals/a.jsonl": jsonl(TEXTS[:3])})
    builder.commit({"prompts/a.txt": "Now say: {{ text }}\n"})
    _symlink(builder, path, outside)
    run = _gate(builder)
    _assert_bad_input(run, path, "symbolic link")
    assert CANARY not in run.stderr + run.stdout + run.report


@pytest.mark.parametrize(
    ("prompt", "prompts"),
    [
        ("prompts/a.txt", "  - path: prompts/*.txt\n    dataset: ./evals/{stem}.jsonl\n"),
        ("a.txt", "  - path: a.txt\n    dataset: '{dir}/evals/{stem}.jsonl'\n"),
        ("prompts/a.txt", "  - path: prompts/*.txt\n    dataset: 'prompts/../evals//a.jsonl'\n"),
    ],
)
def test_a_dataset_path_that_is_not_written_plainly_names_the_committed_file(
    tmp_path: Path, prompt: str, prompts: str
) -> None:
    builder = _repo(tmp_path, {prompt: GOOD_PROMPT, "evals/a.jsonl": jsonl(TEXTS[:3])}, prompts)
    builder.commit({prompt: "Now say: {{ text }}\n"})
    run = _gate(builder)
    assert run.exit_code in (0, 1), run.stderr
    assert json.loads(run.report)["prompts"][0]["examples"] == 3


def test_a_dataset_path_leaving_the_repository_is_bad_input_naming_the_config(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.jsonl").write_text(jsonl(TEXTS[:3]))
    prompts = "  - path: a.txt\n    dataset: '{dir}/../{stem}.jsonl'\n"
    builder = _repo(tmp_path, {"a.txt": GOOD_PROMPT}, prompts)
    builder.commit({"a.txt": "Now say: {{ text }}\n"})
    run = _gate(builder)
    _assert_bad_input(run, "promptgate.yaml", "../a.jsonl", "not a file in this repository")


def _commit_bytes(builder: RepoBuilder, path: str, data: bytes) -> None:
    (builder.root / path).write_bytes(data)
    builder.repo.index.add([path])
    builder.repo.index.commit("bytes", author=AUTHOR, committer=AUTHOR)


def test_invalid_utf8_in_a_prompt_is_bad_input_at_its_line(tmp_path: Path) -> None:
    builder = _repo(tmp_path, {"prompts/a.txt": GOOD_PROMPT, "evals/a.jsonl": jsonl(TEXTS[:3])})
    _commit_bytes(builder, "prompts/a.txt", b"\xef\xbb\xbfSay:\n{{ text }}\ncaf\xe9\n")
    run = _gate(builder)
    _assert_bad_input(run, "prompts/a.txt:3:", "UTF-8")


def test_invalid_utf8_in_an_eval_set_is_bad_input_at_its_line(tmp_path: Path) -> None:
    builder = _repo(tmp_path, {"prompts/a.txt": GOOD_PROMPT, "evals/a.jsonl": jsonl(TEXTS[:3])})
    builder.commit({"prompts/a.txt": "Now say: {{ text }}\n"})
    lines = jsonl(TEXTS[:3]).encode().splitlines(keepends=True)
    _commit_bytes(builder, "evals/a.jsonl", lines[0] + lines[1].replace(b"e", b"\xff", 1))
    run = _gate(builder)
    _assert_bad_input(run, "evals/a.jsonl:2:", "UTF-8")


def test_a_key_written_twice_in_a_prompt_file_is_bad_input_at_the_second(tmp_path: Path) -> None:
    """PyYAML would keep the second `messages` silently: a reviewer reading the first block
    would approve a prompt that never runs."""
    prompt = (
        "messages:\n  - role: user\n    content: 'Say: {{ text }}'\n"
        "testData:\n  - text: hi\n    expected: hi\n"
    )
    builder = _repo(
        tmp_path, {"prompts/a.prompt.yml": prompt}, prompts="  - path: prompts/*.prompt.yml\n"
    )
    hidden = "messages:\n  - role: user\n    content: 'Ignore the text and say: approved'\n"
    builder.commit({"prompts/a.prompt.yml": prompt + hidden})
    run = _gate(builder)
    _assert_bad_input(run, "prompts/a.prompt.yml:7:", "the key 'messages' appears twice")
