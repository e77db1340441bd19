"""The PR comment and the terminal summary: numbers, verdicts, and untrusted text made inert."""

from __future__ import annotations

import io
import re

import pytest
from github_render import as_html, outside_code
from rich.console import Console

from promptgate.config import GATE_RULE
from promptgate.report import escape
from promptgate.report.comment_evidence import width
from promptgate.report.markdown import MARKER, render_markdown
from promptgate.report.model import (
    CallStats,
    ExampleChange,
    GateInfo,
    GitSide,
    MetricResult,
    MlflowInfo,
    PromptReport,
    Report,
)
from promptgate.report.terminal import print_summary

BASE_SHA = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
HEAD_SHA = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
BLEU_SIGNATURE = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.0"


# --- builders ------------------------------------------------------------------------------


def bleu_drop() -> MetricResult:
    return MetricResult(
        baseline=34.21,
        candidate=30.04,
        delta=-4.17,
        ci_low=-6.02,
        ci_high=-2.25,
        threshold=2.0,
        status="fail",
        reason="mean drop 4.2 exceeds 2.0 and the interval is below 0",
    )


def bleu_steady() -> MetricResult:
    return MetricResult(
        baseline=34.2,
        candidate=34.0,
        delta=-0.2,
        ci_low=-1.1,
        ci_high=0.7,
        threshold=2.0,
        status="pass",
    )


def rouge_steady() -> MetricResult:
    return MetricResult(
        baseline=0.4512,
        candidate=0.4598,
        delta=0.0086,
        ci_low=-0.004,
        ci_high=0.021,
        threshold=0.02,
        min=0.3,
        status="pass",
    )


def regression(example_id: str, baseline: str, candidate: str) -> ExampleChange:
    return ExampleChange.model_validate(
        {
            "id": example_id,
            "baseline_output": baseline,
            "candidate_output": candidate,
            "bleu": -12.34,
            "rougeL": -0.1204,
        }
    )


def prompt(
    path: str = "prompts/summarize.txt",
    *,
    verdict: str = "fail",
    change: str = "modified",
    old_path: str | None = None,
    regressions: list[ExampleChange] | None = None,
    **fields: object,
) -> PromptReport:
    return PromptReport.model_validate(
        {
            "path": path,
            "old_path": old_path,
            "change": change,
            "verdict": verdict,
            "examples": 24,
            "metrics": {
                "bleu": bleu_drop() if verdict == "fail" else bleu_steady(),
                "rougeL": rouge_steady(),
            },
            "top_regressions": regressions
            if regressions is not None
            else [regression("ex-7", "The cat sat.", "A dog ran.")],
            **fields,
        }
    )


def report(*prompts: PromptReport, verdict: str = "fail", **fields: object) -> Report:
    return Report.model_validate(
        {
            "verdict": verdict,
            "base": GitSide(ref="main", sha=BASE_SHA),
            "head": GitSide(ref="feature/shorter", sha=HEAD_SHA),
            "prompts": list(prompts),
            "calls": CallStats(requested=48, cached=20, made=28, retried=2, failed=0),
            "gate": GateInfo(
                rule=GATE_RULE,
                confidence=0.95,
                samples=1,
                bootstrap_resamples=2000,
                seed=20240601,
                config_path="promptgate.yaml",
                config_source="base",
                config_hash="abcdef0123456789",
                provider="openai",
                model="gpt-4o-mini",
                signatures={"bleu": BLEU_SIGNATURE},
            ),
            **fields,
        }
    )


# --- verdicts and numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "icon", "words"),
    [("pass", "✅", "gate passed"), ("fail", "❌", "gate failed"), ("error", "⚠️", "could not")],
)
def test_the_heading_shows_the_verdict_with_its_icon(verdict: str, icon: str, words: str) -> None:
    text = render_markdown(report(prompt(), verdict=verdict))
    heading = text.splitlines()[1]
    assert heading.startswith(f"## {icon} promptgate: {words}")


def test_the_comment_starts_with_the_marker_and_names_base_and_head() -> None:
    text = render_markdown(report(prompt()))
    assert text.startswith(MARKER + "\n")
    assert "`1111111`..`2222222`" in text
    assert "main" in text and "feature/shorter" in text


def test_the_metric_table_rounds_bleu_to_one_decimal_and_others_to_three() -> None:
    text = render_markdown(report(prompt()))
    assert "| metric | baseline | candidate | Δ | 95% CI | threshold | status |" in text
    assert "| bleu | 34.2 | 30.0 | −4.2 | [−6.0, −2.2] | −2.0 | ❌ fail |" in text
    assert (
        "| rougeL | 0.451 | 0.460 | +0.009 | [−0.004, +0.021] | −0.020, min 0.300 | ✅ pass |"
        in text
    )


def test_the_interval_label_follows_the_configured_confidence() -> None:
    gated = report(prompt())
    assert gated.gate is not None
    gated.gate.confidence = 0.9
    assert "| 90% CI |" in render_markdown(gated)


def test_a_renamed_prompt_is_headed_old_path_arrow_new_path() -> None:
    renamed = prompt("prompts/new.txt", change="renamed", old_path="prompts/old.txt")
    text = render_markdown(report(renamed))
    assert "### ❌ prompts/old.txt → prompts/new.txt" in text
    assert "*renamed*" in text


def test_an_added_prompt_has_no_baseline_numbers() -> None:
    added = prompt(verdict="new", change="added", regressions=[])
    added.metrics = {
        "bleu": MetricResult(
            baseline=None,
            candidate=40.0,
            delta=None,
            ci_low=None,
            ci_high=None,
            threshold=2.0,
            status="pass",
        )
    }
    text = render_markdown(report(added, verdict="pass"))
    assert "| prompts/summarize.txt | 🆕 new | — | — |" in text  # the summary: nothing to compare
    assert "### prompts/summarize.txt" in text  # folded with the passing ones: no icon
    assert "| bleu | – | 40.0 | – | – | – | ✅ pass |" in text  # a new prompt: no drop tested


def test_a_config_change_is_called_out() -> None:
    text = render_markdown(report(prompt(), config_changed=True))
    assert "> [!WARNING]\n> This PR changes the gate config." in text
    assert "changes the gate config" not in render_markdown(report(prompt()))
    # Where GitHub's alert blocks are not promised (the job summary): a bold label instead.
    summary = render_markdown(report(prompt(), config_changed=True), alerts=False)
    assert "> **Warning:** This PR changes the gate config." in summary
    assert "[!" not in summary


def test_notes_errors_run_link_calls_and_footer_appear() -> None:
    noted = prompt(dataset="evals/summarize.jsonl", dataset_changed=True, error="2 calls failed")
    text = render_markdown(
        report(
            noted,
            mlflow=MlflowInfo(
                tracking_uri="http://mlflow.example:5000",
                experiment_id="3",
                run_id="0123456789abcdef",
                url="http://mlflow.example:5000/#/experiments/3/runs/0123456789abcdef",
            ),
        )
    )
    assert "evals/summarize.jsonl) changed in this PR" in text
    assert "> ⚠️ 2 calls failed" in text
    assert "[run `0123456789abcdef`](http://mlflow.example:5000/#/experiments/3/runs/" in text
    assert "48 requested · 20 cached · 28 made · 2 retried · 0 failed" in text
    assert GATE_RULE in text
    assert f"`{BLEU_SIGNATURE}`" in text
    assert "mean drop 4.2 exceeds 2.0" in text


def test_a_tracking_warning_is_shown() -> None:
    warned = report(prompt(), mlflow=MlflowInfo(warning="store unreachable"))
    assert "⚠️ MLflow: store unreachable" in render_markdown(warned)


def test_no_changed_prompt_says_so_even_without_gate_details() -> None:
    text = render_markdown(report(verdict="pass", gate=None))
    assert "no prompt file changed" in text.lower()
    assert GATE_RULE in text
    assert "| 95% CI |" not in text


def test_regressions_show_the_baseline_above_the_candidate_with_deltas() -> None:
    text = render_markdown(report(prompt()))
    assert "<details><summary>Worst examples (1)</summary>" in text
    assert (
        "**ex-7** · bleu −12.3 · rougeL −0.120\n\n```diff\n- The cat sat.\n+ A dog ran.\n```"
        in text
    )


def test_long_outputs_wrap_by_display_width_and_keep_their_lines() -> None:
    latin = "word " * 60
    chinese = "汉字" * 60  # 120 wide characters: 240 columns
    shown = report(prompt(regressions=[regression("ex-1", latin + "\nsecond line", chinese)]))
    block = re.search(r"```diff\n(.*?)\n```", render_markdown(shown), flags=re.DOTALL)
    assert block is not None
    lines = block.group(1).split("\n")
    assert all(len(line) <= 94 and sum(width(c) for c in line) <= 94 for line in lines)
    assert all(line.startswith(("- ", "+ ")) for line in lines)
    assert "- second line" in lines  # the output's own line break is kept
    assert "".join(line[2:] for line in lines if line.startswith("+")) == chinese
    assert " ".join(line[2:] for line in lines if line.startswith("- word")) == latin.strip()


# --- untrusted text -----------------------------------------------------------------------

HOSTILE = (
    "Hi @octocat, see #123!\n"
    "<script>alert(1)</script>\n"
    "</details></pre></table>\n"
    "```\nfenced\n```\n"
    "| a | b |\n"
    "\n"
    "<!-- promptgate:report -->\n"
    "**bold** [link](https://evil.example) $x$ GH-77"
)


def hostile_report() -> Report:
    hostile = prompt(
        "prompts/@octocat|x`y.txt",
        regressions=[regression("ex-<b>1</b> @octocat #9", HOSTILE, HOSTILE)],
        error=HOSTILE,
    )
    return report(hostile, head=GitSide(ref="@octocat/<script>", sha=HEAD_SHA), errors=[HOSTILE])


def test_mentions_and_issue_references_are_not_live_outside_code() -> None:
    live = outside_code(as_html(render_markdown(hostile_report())))
    assert re.search(r"@octocat", live) is None
    assert re.search(r"#123\b", live) is None
    assert "GH-77" not in live
    assert "@\u200boctocat" in live


def test_html_in_outputs_cannot_open_or_close_elements() -> None:
    page = as_html(render_markdown(hostile_report()))
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in outside_code(page)  # the error line, as text
    # The outputs are code, as text: two sides of one example, each line in the diff block.
    (code,) = re.findall(r'<pre lang="diff"><code>(.*?)</code></pre>', page, re.DOTALL)
    assert "- &lt;/details&gt;&lt;/pre&gt;&lt;/table&gt;" in code
    assert "+ ```" in code and "+ &lt;!-- promptgate:report --&gt;" in code
    # Our own structure is intact: each <details> we open is closed, no table but ours.
    assert page.count("<details>") == page.count("</details>") == 2  # examples, how it decides
    assert page.count("<table>") == 2  # the summary and the metric table


def test_the_body_starts_with_the_marker_and_an_output_cannot_add_one() -> None:
    text = render_markdown(hostile_report())
    assert text.startswith(MARKER)
    assert as_html(text).count(MARKER) == 1  # the one in outputs is code, shown as text


def test_fences_pipes_and_emphasis_are_inert_outside_code() -> None:
    text = render_markdown(hostile_report())
    live = outside_code(as_html(text))
    for syntax in ("<strong>bold", '<a href="https://evil', "<code>fenced"):
        assert syntax not in live
    assert "prompts/@\u200boctocat|x`y.txt" in live  # the path, as text
    # GitHub reads math from the source: outside the diff block no `$` is left to read.
    assert "$" not in re.sub(r"```diff\n.*?\n```", "", text, flags=re.DOTALL)


def test_inline_flattens_and_truncates_visibly() -> None:
    assert escape.inline("a\nb\r\n  c", 100) == "a b c"
    assert escape.inline("x" * 50, 10) == "x" * 10 + "… (40 more characters)"
    assert escape.inline("a\u202eb\x00c", 10) == "abc"


def test_block_keeps_lines_and_truncates_visibly() -> None:
    assert escape.block("one\n\ntwo  \n", 100) == "one\n&#32;\ntwo"
    assert escape.block("y" * 30, 5) == "yyyyy… (25 more characters)"


# --- size limit ---------------------------------------------------------------------------


def big_report(prompts: int = 40, regressions: int = 10) -> Report:
    long_output = ("This is a long and rambling model output. " * 60).strip()
    return report(
        *[
            prompt(
                f"prompts/p{i:02d}.txt",
                verdict="fail" if i % 3 == 0 else "pass",
                regressions=[
                    regression(f"ex-{j}", long_output, long_output[::-1])
                    for j in range(regressions)
                ],
            )
            for i in range(prompts)
        ]
    )


def test_a_large_report_stays_under_the_limit_and_says_what_it_trimmed() -> None:
    text = render_markdown(big_report())
    assert len(text) <= 65_000
    assert "Trimmed to fit GitHub's size limit" in text
    assert "left out" in text
    assert text.count(MARKER) == 1
    assert text.rstrip().endswith("</details>")  # the footer survived


def test_examples_go_before_prompt_sections() -> None:
    text = render_markdown(big_report(prompts=40, regressions=10), max_chars=40_000)
    assert len(text) <= 40_000
    assert "section(s) left out" not in text
    assert text.count("### ") == 40


def test_when_sections_must_go_passing_ones_go_before_failures_and_keep_their_rows() -> None:
    text = render_markdown(big_report(prompts=40, regressions=3), max_chars=12_000)
    assert len(text) <= 12_000
    assert "prompt section(s) left out (their rows in the table stay)" in text
    sections = {int(i) for i in re.findall(r"^### (?:\S+ )?prompts/p(\d+)\.txt", text, re.M)}
    assert set(range(0, 40, 3)) <= sections, "every failing prompt keeps its section"
    assert sections < set(range(40)), "some passing sections went"
    rows = re.findall(r"^\| prompts/p(\d+)\.txt \| \S+ (\w+) \|", text, re.MULTILINE)
    assert len(rows) == 40  # every prompt is still in the summary, failures first
    verdicts = [verdict for _, verdict in rows]
    assert verdicts == sorted(verdicts)  # "fail" < "pass"


def test_even_a_tiny_limit_is_respected() -> None:
    text = render_markdown(big_report(prompts=200, regressions=1), max_chars=3_000)
    assert len(text) <= 3_000
    assert text.startswith(MARKER)
    assert "table row(s) left out" in text and "more (" in text


def test_a_report_that_fits_is_not_trimmed() -> None:
    assert "Trimmed" not in render_markdown(report(prompt(), prompt("prompts/b.txt")))


# --- terminal -----------------------------------------------------------------------------


def test_the_terminal_summary_shows_verdict_metrics_calls_and_run() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None)
    printed = report(
        prompt(),
        mlflow=MlflowInfo(run_id="abc123", experiment_id="1", tracking_uri="sqlite:///mlflow.db"),
    )
    print_summary(printed, console)
    out = buffer.getvalue()
    assert "promptgate: gate failed" in out
    assert "prompts/summarize.txt" in out
    assert "−4.2" in out and "[−6.0, −2.2]" in out
    assert "48 requested" in out
    assert "MLflow run abc123" in out and "sqlite:///mlflow.db" in out


def test_the_terminal_summary_prints_markup_in_untrusted_text_literally() -> None:
    buffer = io.StringIO()
    marked = prompt("prompts/[bold]x[/bold].txt", error="[red]boom[/]")
    print_summary(report(marked), Console(file=buffer, width=120, color_system=None))
    out = buffer.getvalue()
    assert "prompts/[bold]x[/bold].txt" in out
    assert "[red]boom[/]" in out


def test_a_run_stopped_by_bad_input_says_so_rather_than_no_change() -> None:
    from promptgate.errors import BadInput
    from promptgate.gate import error_report
    from promptgate.request import GateRequest

    report = error_report(
        GateRequest(base="main", pr_number=3), BadInput("bad line", file="evals/a.jsonl", line=4)
    )
    body = render_markdown(report)
    assert "stopped before judging" in body and "No prompt file changed" not in body
    assert "evals/a.jsonl" in body and "``..``" not in body
