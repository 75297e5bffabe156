"""Copies a trained model into engine/models/<name> with its model card completed.

Usage: python scripts/ship_default.py RUN/model engine/models/default [--eval EVAL.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

LIMITS = [
    "Working resolution 0.3 m: rasters are read resampled to it (saymap segment --gsd). "
    "Imagery coarser than about 0.6 m has no detail to gain and is outside what it learnt.",
    "Real training data is small: about 500 building footprints from four cities (Kampala, "
    "Zanzibar, Kathmandu, Nairobi), one SpaceNet Atlanta scene and 54 Dubai satellite images. "
    "Buildings in other regions, roof types and sensors are less certain; see the scorecard.",
    "Trees: only synthetic scenes and Dubai's vegetation class (NEON OSBS could not be used "
    "at 0.3 m without touching its hold-out strip).",
    "Vehicles, ships, airplanes and storage tanks are learnt from synthetic scenes only. "
    'On a real 7.5 cm orthophoto of Manila, "cars" gives 15 polygons and misses most '
    "cars; the stage-3 model gave 39: the real-weighted stages 4-5 lost vehicles.",
    "Real referring sentences (largest, position, relations) are computed from polygons; "
    "their hold-out mIoU is far below the class-name results (see the scorecard).",
    "Dubai land cover has no georeference or stated resolution: it is trained and scored at "
    "its own resolution.",
    "Roads: Dubai hold-out IoU 0.46 (recall 0.55): narrow residential streets between "
    "villas and parking rows are often missed or broken; major roads are found. Even on "
    "Dubai images it trained on, road IoU is only 0.57-0.66 (tiles 3 and 5). Roads in "
    "desert (tracks, a highway corridor with sandy medians) are missed: none of its "
    "training images is desert.",
    "Prompts are cut at 20 tokens, as in the papers this follows.",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--eval", type=Path)
    parser.add_argument("--scorecard", type=Path, help="saymap scorecard JSON of this model")
    args = parser.parse_args()

    card = json.loads((args.model / "model_card.json").read_text())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    card.update(
        {
            "name": args.dest.name,
            "recipe_file": "training/recipes/default.toml, then default-stage2.toml to "
            "default-stage5.toml (each from the model of the stage before)",
            "command": "make train-default  (scripts/train_default.sh)",
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "trained_on": f"{platform.processor() or platform.machine()}, commit {commit}",
            "data": [
                "real, at least half of every batch, chips resampled to 0.3 m with scale "
                "jitter and photometric augmentation: building footprints of kampala, "
                "drawn ten times as often as a Dubai chip (data.source_repeat), "
                "hot_zanzibar, hot_kathmandu, hot_nairobi and spacenet_atlanta ('all "
                "buildings' group samples and sentences computed from the polygons); "
                "dubai_landcover tiles 1-6 (building, road, water, vegetation) at its own "
                "resolution; from stage 2 on (3,000 + 2,000 steps after the 2,000-step "
                "stage 1) Dubai's water and road chips drawn 3x and 2x as often; stage 4 "
                "(4,800 steps) with real chips 65 % of each batch, roads 3x, water 2x and "
                "the backbone at 0.4x the rate; stage 5 (1,500 steps, lr 1e-4) adds the "
                "Lovász hinge (loss.lovasz_weight = 1) to cross-entropy and Dice",
                "synthetic: saymap data synth --n 2000 --seed 0 (train split), for the "
                "referring kinds and vehicle, ship, airplane, storage tank",
                "never trained on: the east 25 % of every labelled real raster and "
                "dubai_landcover tile_7 (the scorecard's hold-outs, training/holdouts.py)",
            ],
            "backbone": "MobileNetV2 1.0 ImageNet weights from Google Coral's test data "
            "(Apache-2.0), dequantised by scripts/convert_coral_mobilenet.py",
            "known_limits": LIMITS,
        }
    )
    if args.eval and args.eval.is_file():
        card["evaluation_synthetic_test"] = json.loads(args.eval.read_text())
    if args.scorecard and args.scorecard.is_file():
        scorecard = json.loads(args.scorecard.read_text())
        card["scorecard_real_holdouts"] = {
            "command": "saymap scorecard --sentences",
            "pooled_orthophoto_building_iou": scorecard["pooled_orthophoto_building_iou"],
            "sources": scorecard["sources"],
            "sentences": scorecard.get("sentences", {}),
        }
    tmp = args.dest.with_name(f".{args.dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.model, tmp)
    (tmp / "model_card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    if args.dest.exists():
        shutil.rmtree(args.dest)
    tmp.rename(args.dest)
    print(f"shipped {args.model} as {args.dest}")


if __name__ == "__main__":
    main()
