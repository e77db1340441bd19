"""What a report says about what was judged, when it is not a plain base..head comparison."""

from __future__ import annotations

from promptgate.changes import GitRange
from promptgate.report.format import partial_words
from promptgate.report.model import PartialRun
from promptgate.request import GateRequest

SHOWN_FILES = 5


def run_notes(rng: GitRange, request: GateRequest, partial: PartialRun | None) -> list[str]:
    notes = []
    if not rng.has_base:
        notes.append(
            "No base: HEAD is the repository's first commit and no upstream branch is known, so "
            "every prompt is judged as new (scored; only a metric's `min` can fail it). Pass "
            "--base REF to compare with another commit."
        )
    if rng.work_tree_on:
        uncommitted = rng.uncommitted
        shown = ", ".join(uncommitted[:SHOWN_FILES])
        more = (
            f" and {len(uncommitted) - SHOWN_FILES} more" if len(uncommitted) > SHOWN_FILES else ""
        )
        notes.append(
            f"Head is the working tree on top of {rng.work_tree_on[:12]}: {len(uncommitted)} "
            f"uncommitted file(s) judged ({shown}{more}). Pass --head HEAD to judge the last "
            "commit alone."
        )
    elif request.work_tree == "always":
        notes.append(
            "The working tree has no uncommitted change to a prompt, eval set or config the "
            f"gate reads, so HEAD ({rng.head_sha[:12]}) is judged."
        )
    if partial is not None:
        picked = (
            [f"the first {partial.limit} of each eval set"] if partial.limit is not None else []
        ) + ([f"ids {', '.join(partial.example_ids[:SHOWN_FILES])}"] if partial.example_ids else [])
        notes.append(
            f"Partial run: {partial_words(partial)} ({'; '.join(picked)}). "
            "A look while editing, not a verdict: run without --limit/--examples before you "
            "push."
        )
    return notes
