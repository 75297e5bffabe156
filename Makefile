# SayMap: two commands on a fresh machine — `make demo` and `make test`. Both run `make setup`
# when needed. The engine lives in .venv (torch); QGIS's Python is kept apart (see README).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.saymap-setup
# QGIS (Debian's packages) and the plugin's test venv, made from QGIS's own Python.
QGIS_VENV ?= .venv-qgis
QGIS_STAMP := $(QGIS_VENV)/.saymap-setup
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-engine lint bench package clean setup-qgis test-plugin screenshots train-default

setup: $(STAMP) $(QGIS_STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

$(QGIS_STAMP): scripts/setup_qgis.sh
	bash scripts/setup_qgis.sh $(QGIS_VENV)
	touch $(QGIS_STAMP)

setup-qgis: $(QGIS_STAMP)

demo: setup
	$(PY) scripts/demo.py $(if $(IMAGE),--image "$(IMAGE)") $(if $(PROMPT),--prompt "$(PROMPT)") $(if $(SCENE),--scene "$(SCENE)")

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-engine: setup
	$(PY) -m pytest -q tests/engine tests/training tests/test_packaging.py

test-plugin: setup
	QT_QPA_PLATFORM=offscreen $(QGIS_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/plugin

test: lint test-engine test-plugin

package:
	python3 scripts/package_plugin.py

screenshots: setup
	bash scripts/screenshots.sh

# Each writes its own BENCHMARKS.md section; run nothing else on the machine meanwhile.
bench: setup
	$(PY) scripts/bench_pipeline.py
	$(PY) scripts/bench.py --model tiny --sizes 2000 8000 16000
	$(PY) scripts/bench_server.py --write-benchmarks
	$(PY) scripts/bench_collection.py
	$(VENV)/bin/saymap scorecard --out out/scorecard/default.json --overwrite --benchmarks BENCHMARKS.md

# Rebuilds engine/models/default from training/recipes/default.toml (needs ../shared).
train-default: $(STAMP)
	bash scripts/train_default.sh

clean:
	rm -rf build dist *.egg-info out
