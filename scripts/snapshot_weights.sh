#!/usr/bin/env bash
# Run beside `saymap train ... -o RUN`: keeps a copy of RUN/state's weights at every checkpoint
# (RUN/snapshots/step_N.safetensors) for scripts/learning_curve.py; stops when RUN/model appears.
RUN=${1:-/root/saymap-runs/default}
mkdir -p "$RUN/snapshots"
while true; do
  if [ -f "$RUN/state/state.json" ]; then
    step=$(python3 -c "import json; print(json.load(open('$RUN/state/state.json'))['progress']['model_steps_done'])" 2>/dev/null)
    if [ -n "$step" ] && [ ! -f "$RUN/snapshots/step_$step.safetensors" ]; then
      cp "$RUN/state/model.safetensors" "$RUN/snapshots/step_$step.safetensors.tmp" && mv "$RUN/snapshots/step_$step.safetensors.tmp" "$RUN/snapshots/step_$step.safetensors"
    fi
  fi
  [ -d "$RUN/model" ] && break
  sleep 20
done
