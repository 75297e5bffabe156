#!/usr/bin/env bash
# Rebuilds the shipped default model from its recipe (training/recipes/default.toml).
# Three stages: training/recipes/default.toml (2,000 steps), then default-stage2.toml (3,000
# more from the stage-1 model) and default-stage3.toml (2,000 more from the stage-2 model).
# Needs ../shared (data/real and weights/coral) beside the project. About 2 hours on 2 idle
# CPU cores (1.0-1.1 s a step). Resumable: rerun after an interruption and each stage
# continues from its state (out/default/run/state, out/default/run-stage2/state, then
# run-stage3/state). RUN=DIR keeps the runs elsewhere (e.g. outside the work tree).
set -euo pipefail
cd "$(dirname "$0")/.."
SAYMAP=.venv/bin/saymap
RUN=${RUN:-out/default/run}
export HF_HUB_OFFLINE=1
[ -d ../shared/data/real ] || { echo "train_default: ../shared/data/real is missing" >&2; exit 2; }
[ -f out/default/synth/manifest.json ] || $SAYMAP data synth --out out/default/synth --n 2000 --seed 0
$SAYMAP train training/recipes/default.toml --synthetic out/default/synth -o "$RUN"
# Stages 2 and 3 start from the model of the stage before (their recipe's model.init).
PREV="$RUN"
for STAGE in 2 3; do
    NEXT="$RUN-stage$STAGE"
    sed "s#^init = .*#init = \"$PREV/model\"#" "training/recipes/default-stage$STAGE.toml" > "$NEXT.toml"
    $SAYMAP train "$NEXT.toml" --synthetic out/default/synth -o "$NEXT"
    PREV="$NEXT"
done
RUN="$PREV"
$SAYMAP eval --checkpoint "$RUN/model" --data out/default/synth --split test \
    --limit 1000 --out out/default/eval_synth_test.json --overwrite
$SAYMAP scorecard --checkpoint "$RUN/model" --sentences --out out/default/scorecard.json \
    --markdown out/default/scorecard.md --overwrite
.venv/bin/python scripts/ship_default.py "$RUN/model" engine/models/default \
    --eval out/default/eval_synth_test.json --scorecard out/default/scorecard.json
