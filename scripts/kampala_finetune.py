"""Fine-tune the default model on Kampala with "building" plus 5 sentences, and evaluate
"building" on a spatially disjoint part; writes a BENCHMARKS.md section.

  python scripts/kampala_finetune.py [--steps 150]

Train: the western 1024 columns of kampala_west_rgb.tif (the part the default model saw,
as class names only), its building footprints as "building" samples (all buildings of a
chip), and the five sentences below, written by looking at the image. Evaluate: chips
wholly inside the eastern 1024 columns, prompt "building", against all footprints there.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from pathlib import Path

import torch

from saymap.engine.model import load_model
from saymap.engine.registry import resolve_checkpoint
from saymap.training.data_sources import layer_datasets
from saymap.training.evaluate import NATIVE, evaluate
from saymap.training.recipe import recipe_from_dict
from saymap.training.samples import Subset
from saymap.training.trainer import train

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "kampala"
SENTENCES = [  # feature ids are the layer's instance_id
    {"feature_id": 29, "sentence": "the large orange roof beside the road in the middle"},
    {"feature_id": 60, "sentence": "the small pale green roof next to the red one"},
    {"feature_id": 64, "sentence": "the long narrow building at the top"},
    {"feature_id": 25, "sentence": "the L-shaped red roof by the road"},
    {"feature_id": 13, "sentence": "the red roof on the left side of the road"},
]
OUT = Path("out/kampala_finetune")


def spec(region: list[int], sentences: list[dict] | None) -> dict:
    return {
        "rasters": [str(REAL / "kampala_west_rgb.tif")],
        "labels": str(REAL / "kampala_west_buildings.geojson"),
        "class_field": "class",
        "id_field": "instance_id",
        "group": True,
        "region": region,
        **({"sentences": sentences} if sentences else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--base", default="default")
    args = parser.parse_args()
    torch.set_num_threads(2)
    train_set, _ = layer_datasets(spec([0, 0, 1024, 2048], SENTENCES), 256)
    test_set, _ = layer_datasets(spec([1024, 0, 1024, 2048], None), 256)
    test = Subset(
        test_set.dataset,
        [  # the class-name prompt only
            k for k in test_set.indices if test_set.dataset.records[k].expression == "building"
        ],
    )
    before = evaluate(load_model(resolve_checkpoint(args.base)), test).results[NATIVE]
    recipe = recipe_from_dict(
        {
            "model": {"init": args.base},
            "data": {"chip_size": 256},
            "optim": {"steps": args.steps, "batch_size": 8, "lr": 2e-4, "warmup_steps": 10},
            "wrel": {"method": "lrb-wrel", "bank_steps": 30, "stage1_steps": args.steps // 5},
            "run": {"seed": 0, "device": "cpu", "checkpoint_every": 50, "eval_every": 0},
        }
    )
    started = time.monotonic()
    result = train(recipe, OUT, train_set, None, resume=False)
    seconds = time.monotonic() - started
    after = evaluate(load_model(result.model_dir), test).results[NATIVE]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    n_full = sum(train_set[i].kind == "full" for i in range(len(train_set)))
    text = "\n".join(
        [
            "## Fine-tune on real data (Kampala, class name + 5 sentences)",
            "",
            f"Command: `python scripts/kampala_finetune.py --steps {args.steps}` — LRB-WREL from "
            f"`{args.base}`, {len(train_set)} training samples ({n_full} sentences), "
            f'{len(test)} test chips of the disjoint eastern half, prompt "building".',
            "",
            "| model | oIoU | mIoU | P@0.5 | training wall time |",
            "|---|---:|---:|---:|---:|",
            f"| {args.base} (before) | {before.oiou:.3f} | {before.miou:.3f} | "
            f"{before.precision['0.5']:.3f} | |",
            f"| fine-tuned | {after.oiou:.3f} | {after.miou:.3f} | {after.precision['0.5']:.3f} "
            f"| {seconds:.0f} s |",
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
