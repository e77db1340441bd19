# Two entry points, each self-contained on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export PROMPTGATE_EDITABLE ?= 1

.PHONY: demo test lint typecheck pytest image-test install install-dev clean

$(PY):
	python3 -m venv $(VENV)

install: $(PY)
	PYTHON=$(PY) scripts/install.sh

install-dev: $(PY)
	PYTHON=$(PY) scripts/install.sh dev

demo: install
	$(VENV)/bin/promptgate demo

test: install-dev lint typecheck pytest

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(PY) -m pytest -q

# Build the Action's image and run the gate inside it (Docker, else buildah): scripts/image-test.sh.
image-test: install-dev
	PYTHON=$(PY) scripts/image-test.sh

clean:
	rm -rf $(VENV) .promptgate .pytest_cache .mypy_cache .ruff_cache
