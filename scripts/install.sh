#!/usr/bin/env bash
# The one install path for promptgate: the README, CI and the Docker image all run this.
# Usage: scripts/install.sh [dev]     (dev adds the test and lint tools)
# CPU-only torch goes in first: a plain `torch` requirement would pull a multi-GB CUDA build.
# TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu, as the Dockerfile sets) picks where
# the CPU wheel comes from; unset, pip's own configuration decides.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

torch_source=()
if [[ -n ${TORCH_INDEX_URL:-} ]]; then
  torch_source=(--index-url "$TORCH_INDEX_URL")
fi
"$PYTHON" -m pip install --no-cache-dir "${torch_source[@]}" "torch==${TORCH_VERSION}"

target="."
if [[ ${1:-} == dev ]]; then
  target=".[dev]"
fi
"$PYTHON" -m pip install --no-cache-dir -c requirements/constraints.txt ${PROMPTGATE_EDITABLE:+-e} "$target"

# Export the default embedding model to ONNX now, so the first run of the semantic metric (and the
# Docker image) starts warm, in $PROMPTGATE_MODEL_CACHE (default ~/.cache/promptgate/models).
HF_HUB_OFFLINE=1 "$PYTHON" -m promptgate.metrics.embedding --prepare
