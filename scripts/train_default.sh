#!/usr/bin/env bash
# Rebuilds the shipped default model from its recipe (training/recipes/default.toml).
# Needs ../shared (data/real and weights/coral) beside the project. About 40 minutes on 2 idle CPU
# cores (2,000 steps). Resumable: rerun after an interruption and it continues from
# out/default/run/state. RUN=DIR keeps the run elsewhere (e.g. outside the work tree).
set -euo pipefail
cd "$(dirname "$0")/.."
SAYMAP=.venv/bin/saymap
RUN=${RUN:-out/default/run}
export HF_HUB_OFFLINE=1
[ -d ../shared/data/real ] || { echo "train_default: ../shared/data/real is missing" >&2; exit 2; }
[ -f out/default/synth/manifest.json ] || $SAYMAP data synth --out out/default/synth --n 2000 --seed 0
$SAYMAP train training/recipes/default.toml --synthetic out/default/synth -o "$RUN"
$SAYMAP eval --checkpoint "$RUN/model" --data out/default/synth --split test \
    --limit 1000 --out out/default/eval_synth_test.json --overwrite
$SAYMAP scorecard --checkpoint "$RUN/model" --sentences --out out/default/scorecard.json \
    --markdown out/default/scorecard.md --overwrite
.venv/bin/python scripts/ship_default.py "$RUN/model" engine/models/default \
    --eval out/default/eval_synth_test.json --scorecard out/default/scorecard.json
