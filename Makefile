# SayMap: two commands on a fresh machine — `make demo` and `make test`. Both run `make setup`
# when needed. The engine lives in .venv (torch); QGIS's Python is kept apart (see README).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.saymap-setup
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-engine lint bench package clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

demo: setup
	$(PY) scripts/demo.py $(if $(IMAGE),--image "$(IMAGE)") $(if $(PROMPT),--prompt "$(PROMPT)")

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-engine: setup
	$(PY) -m pytest -q tests/engine tests/training tests/test_packaging.py

test: lint test-engine

bench: setup
	$(PY) scripts/bench.py

clean:
	rm -rf build dist *.egg-info out
