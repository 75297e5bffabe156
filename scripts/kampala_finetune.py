"""Fine-tune the default model on Kampala with "building" plus 5 sentences, as the wizard
does, and score "building" end to end on Kampala's hold-out; writes a BENCHMARKS.md section.

  python scripts/kampala_finetune.py [--steps 150]

Train: kampala_west_rgb.tif outside its hold-out (the eastern 25 %, training/holdouts.py,
which the chip builder never cuts), read at the base model's working resolution, its
building footprints as "building" samples (all buildings of a chip), and the five sentences
below, written by looking at the image. Score: `saymap scorecard --sources kampala` before
and after (what `saymap segment` would give on the hold-out: tiles, blending, polygons).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from pathlib import Path

import torch

from saymap.engine.model import load_model, read_card
from saymap.engine.registry import resolve_checkpoint
from saymap.training.data_sources import layer_datasets
from saymap.training.recipe import recipe_from_dict
from saymap.training.scorecard import ScorecardSettings, run_scorecard
from saymap.training.trainer import train

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
REAL = DATA / "kampala"
SENTENCES = [  # feature ids are the layer's instance_id
    {"feature_id": 29, "sentence": "the large orange roof beside the road in the middle"},
    {"feature_id": 60, "sentence": "the small pale green roof next to the red one"},
    {"feature_id": 64, "sentence": "the long narrow building at the top"},
    {"feature_id": 25, "sentence": "the L-shaped red roof by the road"},
    {"feature_id": 13, "sentence": "the red roof on the left side of the road"},
]
OUT = Path("out/kampala_finetune")


def spec(sentences: list[dict]) -> dict:
    return {
        "rasters": [str(REAL / "kampala_west_rgb.tif")],
        "labels": str(REAL / "kampala_west_buildings.geojson"),
        "class_field": "class",
        "id_field": "instance_id",
        "group": True,
        "sentences": sentences,
    }


def holdout_building(checkpoint: Path) -> dict:
    """Kampala's hold-out row for "building" in the scorecard (counts and IoU)."""
    card = run_scorecard(load_model(checkpoint), DATA, ScorecardSettings(), names=["kampala"])
    rows = [r for r in card["sources"] if r["class"] == "building"]
    return rows[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--base", default="default")
    parser.add_argument("--lr", type=float, default=5e-5)  # the wizard's CPU preset
    parser.add_argument(
        "--backbone-lr-scale", type=float, default=0.1, help="the backbone's lr is lr x this"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    base = resolve_checkpoint(args.base)
    gsd = read_card(base).get("gsd_m")  # the base model's working resolution
    train_set, _ = layer_datasets(spec(SENTENCES), 256, gsd_m=gsd)
    before = holdout_building(base)
    recipe = recipe_from_dict(
        {
            "model": {"init": args.base},
            "data": {"chip_size": 256, "gsd_m": gsd},
            "optim": {
                "steps": args.steps,
                "batch_size": 8,
                "lr": args.lr,
                "backbone_lr_scale": args.backbone_lr_scale,
                "warmup_steps": 10,
            },
            "wrel": {"method": "lrb-wrel", "bank_steps": 30, "stage1_steps": args.steps // 5},
            "run": {"seed": 0, "device": "cpu", "checkpoint_every": 50, "eval_every": 0},
        }
    )
    started = time.monotonic()
    result = train(recipe, OUT, train_set, None, resume=False)
    seconds = time.monotonic() - started
    after = holdout_building(Path(result.model_dir))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    n_full = sum(train_set[i].kind == "full" for i in range(len(train_set)))
    text = "\n".join(
        [
            "## Fine-tune on real data (Kampala, class name + 5 sentences)",
            "",
            f"Command: `python scripts/kampala_finetune.py --steps {args.steps} --lr {args.lr:g} "
            f"--backbone-lr-scale {args.backbone_lr_scale:g}` — LRB-WREL from "
            f"`{args.base}`, {len(train_set)} training samples ({n_full} sentences) at "
            f"{gsd} m from kampala_west outside its hold-out; scored end to end (polygons) on "
            'the hold-out (the eastern 25 %), prompt "building", as `saymap scorecard` does.',
            "",
            "| model | IoU | precision | recall | training wall time |",
            "|---|---:|---:|---:|---:|",
            f"| {args.base} (before) | {before['iou']:.3f} | {before['precision']:.3f} | "
            f"{before['recall']:.3f} | |",
            f"| fine-tuned | {after['iou']:.3f} | {after['precision']:.3f} | "
            f"{after['recall']:.3f} | {seconds:.0f} s |",
            "",
            f"Machine: {platform.processor() or platform.machine()}, 2 threads, torch "
            f"{torch.__version__}, CPU; commit {commit}; {time.strftime('%Y-%m-%d')}.",
            "",
        ]
    )
    print(text)
    bench = Path("BENCHMARKS.md")
    current = bench.read_text()
    title = "## Fine-tune on real data"
    if title in current:
        start = current.index(title)
        end = current.find("\n## ", start + 1)
        current = current[:start] + (current[end + 1 :] if end >= 0 else "")
    bench.write_text(current.rstrip() + "\n\n" + text)


if __name__ == "__main__":
    main()
