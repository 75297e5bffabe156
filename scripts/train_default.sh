#!/usr/bin/env bash
# Rebuilds the shipped default model from its recipe (training/recipes/default.toml).
# Five stages: training/recipes/default.toml (2,000 steps), then default-stage2.toml (3,000
# more from the stage-1 model), default-stage3.toml (2,000 more), default-stage4.toml (4,800
# more, a road-heavier mix) and default-stage5.toml (1,500 more with the Lovász hinge), each
# from the model of the stage before. Needs ../shared (data/real and weights/coral) beside
# the project. About 4 hours on 2 idle CPU cores (1.0-1.3 s a step). Resumable: rerun after
# an interruption and each stage continues from its state (out/default/run/state, then
# out/default/run-stage2/state ... run-stage5/state). RUN=DIR keeps the runs elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
SAYMAP=.venv/bin/saymap
RUN=${RUN:-out/default/run}
export HF_HUB_OFFLINE=1
[ -d ../shared/data/real ] || { echo "train_default: ../shared/data/real is missing" >&2; exit 2; }
[ -f out/default/synth/manifest.json ] || $SAYMAP data synth --out out/default/synth --n 2000 --seed 0
$SAYMAP train training/recipes/default.toml --synthetic out/default/synth -o "$RUN"
# Stages 2 to 5 start from the model of the stage before (their recipe's model.init).
PREV="$RUN"
for STAGE in 2 3 4 5; do
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
