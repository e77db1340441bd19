"""The comment of a ten-prompt PR (tests/ten_prompts.py), gated for real against the noisy LLM
stub and rendered as GitHub renders it, with GitHub's own cmark-gfm: the first table names the
failures first, the evidence fits a 900-pixel comment, the numbers have one format, and what
passed is folded away."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from gate_fixtures import API_KEY, API_KEY_ENV
from github_render import as_html, outside_code
from llm_stub import LLMStub
from ten_prompts import LONG_TEXTS, REGRESSED

from promptgate.report.format import display_path, format_interval, format_score
from promptgate.report.markdown import render_markdown
from promptgate.report.model import Report

Rendered = tuple[Report, str, str]  # the report, its Markdown, the HTML GitHub makes of it


@pytest.fixture(scope="module")
def ten(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    from ten_prompts import ten_prompt_pr

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(API_KEY_ENV, API_KEY)
        with LLMStub(api_key=API_KEY, sampling_noise=0.3, noise_salt="ten-prompts") as stub:
            run = ten_prompt_pr(tmp_path_factory.mktemp("ten"), stub).gate(use_cache=False)
    markdown = render_markdown(run.report)
    yield run.report, markdown, as_html(markdown)


def text_of(cell: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()


def first_table_rows(page: str) -> list[list[str]]:
    table = page.split("<table>", 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [
        [text_of(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)
    ]


def test_the_first_table_lists_every_prompt_failures_first(ten: Rendered) -> None:
    report, _, page = ten
    assert sorted(p.path for p in report.prompts if p.verdict == "fail") == sorted(REGRESSED)
    rows = first_table_rows(page)
    assert len(rows) == len(report.prompts) == 10
    assert sorted(row[0] for row in rows[:3]) == sorted(REGRESSED)
    assert all(row[1] == "❌ fail" for row in rows[:3])
    assert not any("fail" in row[1] for row in rows[3:])
    # Each failing row gives the metric that failed it, with the numbers of its own table.
    by_path = {display_path(p): p for p in report.prompts}
    for path, _, worst, threshold in rows[:3]:
        name = worst.split(" ", 1)[0]
        result = by_path[path].metrics[name]
        assert result.status == "fail"
        assert worst == (
            f"{name} {format_score(name, result.delta, signed=True)} "
            f"{format_interval(name, result.ci_low, result.ci_high)}"
        )
        assert threshold == format_score(name, -result.threshold, signed=True)
    # A reformatted prompt says it changed nothing, rather than a row of zeros.
    assert ["prompts/format.prompt.yml", "✅ pass", "identical outputs", "—"] in rows


def test_no_line_of_evidence_is_wider_than_100_characters(ten: Rendered) -> None:
    report, _, page = ten
    blocks = re.findall(r'<pre lang="diff"><code>(.*?)</code></pre>', page, re.DOTALL)
    shown = sum(len(p.top_regressions) for p in report.prompts)
    assert len(blocks) == shown > 0
    lines = [line for block in blocks for line in html.unescape(block).splitlines()]
    assert max(len(line) for line in lines) <= 100
    # Outputs longer than a line were among them, wrapped rather than cut or scrolled.
    long_ids = {f"ex-{12 + i}" for i in range(len(LONG_TEXTS))}
    shown_ids = {e.id for p in report.prompts for e in p.top_regressions}
    assert long_ids & shown_ids
    assert max(len(html.unescape(b).splitlines()) for b in blocks) > 2


def test_numbers_have_one_format(ten: Rendered) -> None:
    report, markdown, page = ten
    live = text_of(outside_code(page))
    # The typographic minus everywhere numbers are shown; never a hyphen before a digit.
    assert re.search(r"(?<![\w.])-\d", live) is None
    assert "−" in live
    # A metric's delta reads the same in the summary, its table and its reason.
    for prompt in report.prompts:
        for name, result in prompt.metrics.items():
            if result.status != "fail":
                continue
            delta = format_score(name, result.delta, signed=True)
            assert f" | {delta} | " in markdown  # its table
            assert f"mean delta {delta} is below" in live  # the reason under the table
    # Every score in every metric table has its metric's decimals (BLEU 1, ROUGE-L 3).
    rows = re.findall(
        r"^\| (bleu|rougeL) \| (.*?) \| (.*?) \| (.*?) \| \[(.*?), (.*?)\] \| (.*?) \|",
        markdown,
        re.M,
    )
    tabled = [
        p
        for p in report.prompts
        if p.change != "added" and p.metrics and not all(m.identical for m in p.metrics.values())
    ]
    assert len(rows) == 2 * len(tabled) == 12
    for name, *cells in rows:
        decimals = 1 if name == "bleu" else 3
        for cell in cells:
            assert re.fullmatch(rf"[+−]?\d+\.\d{{{decimals}}}", cell), (name, cell)


def test_what_passed_is_folded_and_what_failed_is_not(ten: Rendered) -> None:
    report, markdown, page = ten
    # The fold runs from its summary to the MLflow line that follows it.
    folded = re.search(r"<details><summary>([^<]*prompts)</summary>(.*?)<p>MLflow:", page, re.S)
    assert folded is not None
    assert folded.group(1) == "1 new, 5 passing, 1 removed prompts"
    for prompt in report.prompts:
        heading = re.escape(html.escape(display_path(prompt), quote=False))
        inside = re.search(rf"<h3>{heading}</h3>", folded.group(2)) is not None
        assert inside == (prompt.verdict != "fail"), prompt.path
    # The reformatted prompt has a sentence, not a table of zeros.
    section = markdown.split("### prompts/format.prompt.yml", 1)[1].split("###", 1)[0]
    assert "Every example scored the same on both versions" in section
    assert "| metric |" not in section


def test_the_comment_renders_without_raw_markdown_left_over(ten: Rendered) -> None:
    _, _, page = ten
    live = text_of(outside_code(page))
    for leftover in ("```", "**", "|---", "<details", "</summary"):
        assert leftover not in live
