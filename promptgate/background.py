"""Importing a heavy library on a thread while the gate does other work.

An import is CPU work under the GIL, but the gate spends most of its time waiting (on git, on the
LLM's latency), and some imports release the GIL themselves (aiohttp loading CA certificates).
A later import of the same module waits for the thread's (Python's import lock), and an error in
it is raised again there, where it is reported as usual; so the thread swallows it.
"""

from __future__ import annotations

import contextlib
import importlib
import threading


def import_in_background(*modules: str) -> None:
    """Start importing `modules`, in order, on a daemon thread."""
    if modules:
        threading.Thread(
            target=_import_quietly,
            args=(modules,),
            name=f"promptgate-import-{modules[0]}",
            daemon=True,
        ).start()


def _import_quietly(modules: tuple[str, ...]) -> None:
    with contextlib.suppress(Exception):
        for name in modules:
            importlib.import_module(name)
