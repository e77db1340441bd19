"""Re-take the README's screenshots: the PR comment as GitHub renders it, and the gate's runs in
MLflow's own UI (the runs list, and Evaluation runs comparing a prompt's two versions).

    python scripts/screenshots.py [--out docs/images]

Both come from a real gate run of the ten-prompt PR the tests use (tests/ten_prompts.py)
against the noisy LLM stub, logged to a real `mlflow server` on 127.0.0.1. The comment is
rendered with GitHub's cmark-gfm (the `cmarkgfm` binding) under GitHub's Markdown CSS (npm's
`github-markdown-css`, fetched once into the cache) at GitHub's 900-pixel comment width, with
the folded `<details>` left closed as a reviewer first sees them. Needs Debian's `chromium`, npm,
and the dev install (`make install-dev`, for cmarkgfm and the MLflow UI).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CSS_PACKAGE = "github-markdown-css@5.9.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "promptgate" / "css"
COMMENT_WIDTH = 900
PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>{css}
body {{ margin: 0; background: #fff; }}
.markdown-body {{ box-sizing: border-box; width: {width}px; padding: 16px; }}
</style></head><body><article class="markdown-body">{body}</article></body></html>"""


def markdown_css() -> str:
    """GitHub's Markdown CSS (light), from npm, cached."""
    css = CACHE / "github-markdown-light.css"
    if not css.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as work:
            subprocess.run(
                ["npm", "pack", CSS_PACKAGE, "--silent"], cwd=work, check=True, timeout=120
            )
            (archive,) = Path(work).glob("*.tgz")
            shutil.unpack_archive(archive, work)
            shutil.copy(Path(work) / "package" / "github-markdown-light.css", css)
    return css.read_text(encoding="utf-8")


def screenshot(url: str, out: Path, width: int, height: int, wait_ms: int = 0) -> None:
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--window-size={width},{height}", f"--screenshot={out}",
    ]  # fmt: skip
    if wait_ms:
        command.append(f"--virtual-time-budget={wait_ms}")
    subprocess.run([*command, url], check=True, timeout=180, capture_output=True)
    print(f"wrote {out}")


def comment_png(markdown: str, out: Path, work: Path) -> None:
    import cmarkgfm
    from cmarkgfm.cmark import Options

    body = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    page = work / "comment.html"
    page.write_text(
        PAGE.format(css=markdown_css(), width=COMMENT_WIDTH, body=body), encoding="utf-8"
    )
    screenshot(page.as_uri(), out, COMMENT_WIDTH, 1700)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from gate_fixtures import API_KEY, API_KEY_ENV
    from llm_stub import LLMStub
    from mlflow_server import running_mlflow_server
    from ten_prompts import ten_prompt_pr

    from promptgate.report.markdown import render_markdown

    os.environ[API_KEY_ENV] = API_KEY
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        with running_mlflow_server(work) as server:
            os.environ["MLFLOW_TRACKING_URI"] = server.uri
            with LLMStub(api_key=API_KEY, sampling_noise=0.3, noise_salt="ten-prompts") as stub:
                run = ten_prompt_pr(work, stub).gate(use_cache=False)
            comment_png(render_markdown(run.report), args.out / "comment.png", work)
            info = run.report.mlflow
            runs = f"{server.uri}/#/experiments/{info.experiment_id}/runs"
            screenshot(runs, args.out / "mlflow-runs.png", 1400, 900, wait_ms=15000)
            # Evaluation runs, a regressed prompt's candidate compared with its baseline.
            from mlflow import MlflowClient

            children = MlflowClient(server.uri).search_runs(
                [info.experiment_id],
                filter_string=f"tags.`mlflow.parentRunId` = '{info.run_id}' "
                "and tags.`promptgate.prompt` = 'prompts/billing.txt'",
            )
            ids = {child.data.tags["promptgate.version"]: child.info.run_id for child in children}
            compare = (
                f"{server.uri}/#/experiments/{info.experiment_id}/evaluation-runs"
                f"?selectedRunUuid={ids['candidate']}&compareToRunUuid={ids['baseline']}"
            )
            screenshot(compare, args.out / "mlflow-evaluation.png", 1800, 1000, wait_ms=20000)


if __name__ == "__main__":
    main()
