# promptgate as a Docker container action, in two stages: `export` turns the bundled MiniLM model
# into ONNX with torch and sentence-transformers; the final image runs the gate with onnxruntime
# and that export, without torch, transformers or sentence-transformers (issue 12: a third of the
# size). Both stages install with scripts/install.sh, the one install path the README and CI use.
#
#   docker build -t promptgate .
#   scripts/image-test.sh            # builds it (docker, else buildah), runs the gate inside, times it
#
# BASE_IMAGE: any Debian-like image with python3 (>= 3.11), pip and venv; a mirror, or a local
# base where Docker Hub is out of reach. TORCH_INDEX_URL: where the CPU build of torch comes from
# (empty: pip's own configuration decides, e.g. a local find-links directory).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# The export is the same ONNX graph on every platform: it runs once, natively, in a multi-platform build.
FROM --platform=${BUILDPLATFORM} ${BASE_IMAGE} AS export
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PROMPTGATE_MODEL_CACHE=/opt/promptgate/models
WORKDIR /opt/promptgate
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY scripts/ scripts/
COPY promptgate/ promptgate/
# A virtual environment keeps this stage's install apart from the base's own Python packages.
RUN python3 -m venv /opt/export-venv \
    && PYTHON=/opt/export-venv/bin/python TORCH_INDEX_URL="${TORCH_INDEX_URL}" \
       scripts/install.sh export

FROM ${BASE_IMAGE}
# HF_HUB_OFFLINE: the image never reaches a model hub; a model with no installed export is exit 2
# saying how to get one. PROMPTGATE_MODEL_CACHE: where the export lives. GitHub runs container
# actions with HOME=/github/home, so the default ~/.cache would miss it.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PROMPTGATE_MODEL_CACHE=/opt/promptgate/models \
    PATH=/opt/venv/bin:$PATH

# git is what the gate reads prompt history with. Debian's bookworm git is pinned by the base image's release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/promptgate
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY scripts/ scripts/
COPY promptgate/ promptgate/
COPY entrypoint.py ./
RUN python3 -m venv /opt/venv \
    && PYTHON=/opt/venv/bin/python scripts/install.sh runtime
COPY --from=export /opt/promptgate/models /opt/promptgate/models
# The installed export must open here, where torch and the model's package are absent.
RUN python -m promptgate.metrics.embedding --prepare

# GitHub runs container actions as root with the workspace mounted at /github/workspace.
ENTRYPOINT ["python", "/opt/promptgate/entrypoint.py"]
