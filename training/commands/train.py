"""`saymap train RECIPE`: a thin wrapper over `saymap.training.trainer.train`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train or fine-tune a model from a recipe",
        description="Train per a recipe (a TOML file or a shipped recipe name: tiny-cpu, "
        "base-gpu, rrsisd-paper). Resumes from OUT/state when it exists.",
    )
    p.add_argument("recipe", help="recipe TOML file or shipped recipe name")
    p.add_argument("-o", "--out", required=True, type=Path, help="run folder (state/, model/)")
    p.add_argument("--synthetic", help="synthetic dataset folder (overrides data.synthetic)")
    p.add_argument("--steps", type=int, help="override optim.steps")
    p.add_argument("--method", choices=["accurate-only", "naive-wrel", "lrb-wrel"])
    p.add_argument("--full-ratio", type=float, help="override data.full_ratio")
    p.add_argument("--seed", type=int, help="override run.seed")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--fresh", action="store_true", help="ignore OUT/state and start over")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from saymap.training.data_sources import build_datasets, inherit_working_resolution
    from saymap.training.recipe import load_recipe
    from saymap.training.trainer import TrainEvent, train

    recipe = load_recipe(args.recipe)
    if args.synthetic:
        recipe.data.synthetic = args.synthetic
    if args.steps:
        recipe.optim.steps = args.steps
    if args.method:
        recipe.wrel.method = args.method
    if args.full_ratio is not None:
        recipe.data.full_ratio = args.full_ratio
    if args.seed is not None:
        recipe.run.seed = args.seed
    if args.device:
        recipe.run.device = args.device
    recipe.__post_init__()  # re-check what the flags changed
    inherit_working_resolution(recipe)
    train_set, val_set = build_datasets(recipe.data)

    bar = tqdm(total=None, unit="step", file=sys.stderr, dynamic_ncols=True)

    def show(event: TrainEvent) -> None:
        bar.total = event.total_steps
        bar.n = event.step
        post = {"stage": event.stage}
        if event.loss is not None:
            post["loss"] = f"{event.loss:.3f}"
        if event.metrics:
            post["val oIoU"] = f"{event.metrics.get('all/oIoU', 0):.3f}"
        bar.set_postfix(post)
        bar.refresh()

    result = train(recipe, args.out, train_set, val_set, events=show, resume=not args.fresh)
    bar.close()
    print(
        json.dumps(
            {"model": str(result.model_dir), "metrics": result.metrics, "notes": result.notes},
            indent=2,
        )
    )
    return 0
