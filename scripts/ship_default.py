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
    "Trained on 256 px chips of synthetic scenes plus a few hundred real chips (Kampala, "
    "NEON, SpaceNet Atlanta): expect rough masks on real imagery, best for buildings and trees.",
    "The vision backbone is trained from scratch on CPU; no ImageNet features.",
    "Prompts are cut at 20 tokens, as in the papers this follows.",
    "Ground sampling distance seen in training: 0.075-0.5 m. Coarser imagery (e.g. 30 m "
    "Landsat) is far outside it.",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--eval", type=Path)
    args = parser.parse_args()

    card = json.loads((args.model / "model_card.json").read_text())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    card.update(
        {
            "name": args.dest.name,
            "recipe_file": "training/recipes/default.toml",
            "command": "make train-default  (scripts/train_default.sh)",
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "trained_on": f"{platform.processor() or platform.machine()}, commit {commit}",
            "data": [
                "synthetic: saymap data synth --n 2000 --seed 0 (train split)",
                "kampala_west buildings, columns 0-1023 (group samples 'building')",
                "NEON OSBS_029 tree boxes (group samples 'tree')",
                "SpaceNet Atlanta sample buildings (group samples 'building')",
            ],
            "known_limits": LIMITS,
        }
    )
    if args.eval and args.eval.is_file():
        card["evaluation_synthetic_test"] = json.loads(args.eval.read_text())
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
