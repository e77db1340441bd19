#!/usr/bin/env bash
# Build the Action's image and run the gate inside it, as GitHub runs a container action.
#
#   scripts/image-test.sh                 # build, test, benchmark start-up; prints the figures
#   IMAGE=promptgate:dev SKIP_BUILD=1 scripts/image-test.sh   # test an image already built
#
# Docker builds and runs it where an engine answers; else buildah (Debian's package; a RUN step
# needs --isolation=chroot, and `podman run` is not used). Environment:
#   IMAGE            the tag to build (default localhost/promptgate:test)
#   BASE_IMAGE       the Dockerfile's base (default python:3.11-slim-bookworm); `local` builds a
#                    bookworm base with mmdebstrap where Docker Hub is out of reach
#   TORCH_INDEX_URL  the Dockerfile's torch source (default PyTorch's CPU index); empty: pip's
#                    own configuration decides (with buildah, the host's pip configuration and the
#                    local paths it names are mounted into the build, read-only)
#   PYTHON           the Python whose pytest runs the tests (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/promptgate:test}
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim-bookworm}
PYTHON=${PYTHON:-.venv/bin/python}
LOCAL_BASE=localhost/bookworm-python:latest

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  ENGINE=docker
elif command -v buildah >/dev/null; then
  ENGINE=buildah
else
  echo "image-test: needs a Docker engine or buildah (apt-get install buildah)" >&2
  exit 2
fi

image_bytes() {
  if [[ $ENGINE == docker ]]; then
    docker image inspect --format '{{.Size}}' "$1"
  else
    podman image inspect --format '{{.Size}}' "$1"
  fi
}

# A bookworm base with Python, pip and venv, made from Debian's packages alone.
local_base() {
  if buildah inspect --type image "$LOCAL_BASE" >/dev/null 2>&1; then
    return
  fi
  local tarball
  tarball=$(mktemp --suffix=.tar)
  mmdebstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    bookworm "$tarball"
  podman import "$tarball" "$LOCAL_BASE"
  rm -f "$tarball"
}

# The host's pip configuration files and the local paths they name, as read-only mounts.
pip_mounts() {
  "$PYTHON" - <<'EOF'
import re, subprocess, sys
from pathlib import Path
debug = subprocess.run([sys.executable, "-m", "pip", "config", "debug"], capture_output=True, text=True).stdout
paths = {m.group(1) for m in re.finditer(r"^\s+(/\S+\.conf), exists: True", debug, re.M)}
for value in re.findall(r"[=:]\s*'?([^'\n]+)'?$", debug, re.M):
    for word in value.split():
        path = word.removeprefix("file://")
        if path.startswith("/") and Path(path).exists():
            paths.add(path.rstrip("/") if not path.endswith("/simple") else str(Path(path).parent))
for path in sorted(paths):
    print(f"-v {path}:{path}:ro")
EOF
}

build() {
  local base=$BASE_IMAGE
  if [[ $base == local ]]; then
    local_base
    base=$LOCAL_BASE
  fi
  BASE_FOR_SIZE=$base
  local args=(--build-arg "BASE_IMAGE=$base")
  if [[ -v TORCH_INDEX_URL ]]; then
    args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
  fi
  if [[ $ENGINE == docker ]]; then
    docker build -t "$IMAGE" "${args[@]}" .
  else
    local mounts=()
    if [[ -v TORCH_INDEX_URL && -z $TORCH_INDEX_URL ]]; then
      read -ra mounts <<<"$(pip_mounts | tr '\n' ' ')"
    fi
    buildah bud --isolation=chroot --layers -t "$IMAGE" "${args[@]}" "${mounts[@]}" .
  fi
}

started=$(date +%s)
if [[ -z ${SKIP_BUILD:-} ]]; then
  build
else
  BASE_FOR_SIZE=${BASE_IMAGE/#local/$LOCAL_BASE}
fi
built=$(date +%s)

PROMPTGATE_IMAGE=$IMAGE HF_HUB_OFFLINE=1 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_image.py
# A benchmark reports: on a loaded machine it may miss its targets without the image being wrong.
"$PYTHON" benchmarks/bench_startup.py --image "$IMAGE" --runs "${STARTUP_RUNS:-5}" \
  || echo "image-test: the start-up benchmark missed its targets (above)" >&2

image=$(image_bytes "$IMAGE")
base=$(image_bytes "$BASE_FOR_SIZE" 2>/dev/null || echo 0)
echo
echo "image-test: $IMAGE built and tested with $ENGINE"
echo "  build time        $(((built - started) / 60)) min $(((built - started) % 60)) s$([[ -n ${SKIP_BUILD:-} ]] && echo ' (skipped)')"
echo "  image size        $((image / 1000000)) MB"
echo "  added to base     $(((image - base) / 1000000)) MB (base $BASE_FOR_SIZE: $((base / 1000000)) MB; target <= 800 MB)"
