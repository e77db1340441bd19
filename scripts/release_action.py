#!/usr/bin/env python3
"""Point action.yml at a published image: the release workflow's one edit to the file.

    python3 scripts/release_action.py ghcr.io/promptgate/promptgate@sha256:<64 hex> [action.yml]

On main, `runs.image: Dockerfile` makes GitHub build the image on every run (and `uses: $/` test
this commit's Dockerfile). A release tag's action.yml instead pulls the image the release
workflow pushed, by digest: `docker://REGISTRY/NAME@sha256:…`, so a tag always runs the exact
image that was built, attested and tested for it. Only that line changes; the rest of the file,
comments included, stays as it is.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

#: A registry image by digest, as `docker://` takes it: lower-case name, sha256 digest.
IMAGE = re.compile(
    r"(?:[a-z0-9-]+\.)+[a-z0-9-]+(?::[0-9]+)?"  # the registry's host (and port)
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+"  # the repository's path
    r"@sha256:[0-9a-f]{64}"
)
BUILT = re.compile(r"^(  image: )Dockerfile$", re.M)


def pin(action_yml: str, image: str) -> str:
    """`action_yml` with its `runs.image` pulling `image`; ValueError when either is not as
    expected (a release must not publish a half-edited action)."""
    if not IMAGE.fullmatch(image):
        raise ValueError(
            f"not an image by digest: {image!r} (expected REGISTRY/NAME@sha256:<64 hex digits>)"
        )
    pinned, count = BUILT.subn(rf"\g<1>docker://{image}", action_yml)
    if count != 1:
        raise ValueError(f"action.yml has {count} `  image: Dockerfile` lines, expected exactly 1")
    return pinned


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    path = Path(argv[1] if len(argv) == 2 else "action.yml")
    try:
        path.write_text(pin(path.read_text(encoding="utf-8"), argv[0]), encoding="utf-8")
    except (OSError, ValueError) as error:
        print(f"release_action: {error}", file=sys.stderr)
        return 2
    print(f"{path}: runs.image is docker://{argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
