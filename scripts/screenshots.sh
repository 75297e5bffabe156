#!/usr/bin/env bash
# Screenshots of the real QGIS desktop (under Xvfb) with the SayMap toolbar and a result
# layer over a real raster: `make screenshots`. The plugin is installed from the zip that
# `make package` builds into a fresh QGIS profile, and it starts the engine itself.
#
#   RASTER=...     the raster (default: ../shared/data/real/kampala/kampala_west_rgb.tif)
#   PROMPT=...     what to map (default: building)
#   MODEL_DIR=...  a model folder (config.json, model.safetensors, model_card.json) to use;
#                  default: the engine's active model, or, when none is registered, the tiny
#                  configuration with random weights (the caption then says so).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RASTER=$(realpath "${RASTER:-../shared/data/real/kampala/kampala_west_rgb.tif}")
PROMPT=${PROMPT:-building}
OUT=${OUT:-docs}
ENGINE_PY=${ENGINE_PY:-$ROOT/.venv/bin/python}
for tool in xvfb-run qgis convert; do
    command -v "$tool" >/dev/null || { echo "screenshots: $tool missing; run make setup" >&2; exit 1; }
done
[ -f "$RASTER" ] || { echo "screenshots: no raster at $RASTER" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SAYMAP_DATA_DIR="$work/data" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$SAYMAP_DATA_DIR/models"

# The model the engine will serve.
model_note=""
if [ -n "${MODEL_DIR:-}" ]; then
    cp -r "$MODEL_DIR" "$SAYMAP_DATA_DIR/models/$(basename "$MODEL_DIR")"
    basename "$MODEL_DIR" > "$SAYMAP_DATA_DIR/active_model"
elif ! "$ENGINE_PY" -c "from saymap.engine import registry as r; r.find(r.active_name())" 2>/dev/null; then
    echo "screenshots: no model registered; using the tiny configuration with random weights"
    "$ENGINE_PY" - "$SAYMAP_DATA_DIR/models/tiny-random" <<'PY'
import sys, torch
from saymap.engine.model import SaymapConfig, SaymapModel, save_model
torch.manual_seed(0)
model = SaymapModel(SaymapConfig.named("tiny"))
save_model(model, sys.argv[1], {"name": "tiny-random", "classes": ["building", "car"],
                                "note": "random weights, for screenshots of the plumbing"})
PY
    echo tiny-random > "$SAYMAP_DATA_DIR/active_model"
    model_note="random-weight model"
fi

# A fresh QGIS profile with the packaged plugin installed and enabled.
profile="$work/profiles/profiles/default"
mkdir -p "$profile/python/plugins" "$profile/QGIS"
python3 scripts/package_plugin.py --dist "$work/dist" >/dev/null
(cd "$profile/python/plugins" && unzip -q "$work"/dist/saymap-*.zip)
printf '[PythonPlugins]\nsaymap=true\n' > "$profile/QGIS/QGIS3.ini"

mkdir -p "$OUT"
SAYMAP_SHOT_RASTER="$RASTER" SAYMAP_SHOT_PROMPT="$PROMPT" SAYMAP_SHOT_OUT=$(realpath "$OUT") \
SAYMAP_SHOT_WORK="$work" SAYMAP_SHOT_NOTE="$model_note" \
    timeout 600 xvfb-run -a -s "-screen 0 1280x800x24" \
    qgis --nologo --noversioncheck --profiles-path "$work/profiles" --code scripts/screenshots.py \
    > "$work/qgis.log" 2>&1 || true
if [ ! -f "$work/status.json" ]; then
    echo "screenshots: QGIS did not finish; its log:" >&2
    tail -n 40 "$work/qgis.log" >&2
    exit 1
fi
cat "$work/status.json"; echo
python3 -c "import json,sys; sys.exit(0 if json.load(open('$work/status.json')).get('ok') else 1)"
ls -l "$OUT"/screenshot_*.png
