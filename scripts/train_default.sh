#!/usr/bin/env bash
# Rebuilds the shipped default model from its recipe (training/recipes/default.toml).
# Needs ../shared/data/real beside the project. About 30-45 min on 2 CPU cores.
# Resumable: rerun after an interruption and it continues from out/default/run/state.
set -euo pipefail
cd "$(dirname "$0")/.."
SAYMAP=.venv/bin/saymap
export HF_HUB_OFFLINE=1
[ -d ../shared/data/real ] || { echo "train_default: ../shared/data/real is missing" >&2; exit 2; }
[ -f out/default/synth/manifest.json ] || $SAYMAP data synth --out out/default/synth --n 2000 --seed 0
$SAYMAP train training/recipes/default.toml -o out/default/run
$SAYMAP eval --checkpoint out/default/run/model --data out/default/synth --split test \
    --limit 1000 --out out/default/eval_synth_test.json --overwrite
.venv/bin/python scripts/ship_default.py out/default/run/model engine/models/default \
    --eval out/default/eval_synth_test.json
