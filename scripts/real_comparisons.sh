#!/usr/bin/env bash
# Equal-budget comparisons on the real hold-outs, each from the default recipe:
#   pretrained  - the recipe as is (ImageNet MobileNetV2 from ../shared/weights/coral)
#   scratch     - the same with the backbone from random initialisation
#   lrb-wrel    - the recipe with LRB-WREL instead of naive WREL
# Each trains STEPS steps (same data, batch and schedule, so the same time per step), then
# `saymap scorecard` scores it. Results: OUT/<variant>/scorecard.{json,md}; wall times in
# OUT/<variant>/seconds. Usage: STEPS=300 SYNTH=out/default/synth bash scripts/real_comparisons.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-300}
OUT=${OUT:-out/real-comparisons}
SYNTH=${SYNTH:-out/default/synth}
VARIANTS=${VARIANTS:-pretrained scratch lrb-wrel}
SAYMAP=.venv/bin/saymap
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"
for variant in $VARIANTS; do
    recipe="$OUT/$variant.toml"
    cp training/recipes/default.toml "$recipe"
    extra=()
    case "$variant" in
        scratch) sed -i 's/^config = "mobile"$/config = "mobile"\noverrides = { backbone_pretrained = "" }/' "$recipe" ;;
        lrb-wrel) extra=(--method lrb-wrel) ;;
    esac
    if [ ! -f "$OUT/$variant/model/model_card.json" ]; then
        start=$(date +%s)
        $SAYMAP train "$recipe" --synthetic "$SYNTH" -o "$OUT/$variant" --steps "$STEPS" "${extra[@]}"
        echo $(( $(date +%s) - start )) > "$OUT/$variant/seconds"
    fi
    [ -f "$OUT/$variant/scorecard.json" ] || $SAYMAP scorecard --checkpoint "$OUT/$variant/model" \
        --out "$OUT/$variant/scorecard.json" --markdown "$OUT/$variant/scorecard.md"
done
