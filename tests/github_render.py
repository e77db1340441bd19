"""The comment as GitHub renders it: GitHub's own cmark-gfm (the `cmarkgfm` binding), with its
Markdown extensions, raw HTML kept (the worst case: GitHub's sanitiser only takes more away)."""

from __future__ import annotations

import re

import cmarkgfm
from cmarkgfm.cmark import Options


def as_html(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def outside_code(page: str) -> str:
    """The rendered comment without its code blocks: where text is live (GitHub links no
    mention or issue number inside code)."""
    return re.sub(r"<pre[^>]*><code[^>]*>.*?</code></pre>", "", page, flags=re.DOTALL)
