"""The learning curve of a training run: hold-out scorecard IoU per source against steps.

`scripts/snapshot_weights.sh RUN` (run beside `saymap train`) keeps RUN/state's weights at
every checkpoint as RUN/snapshots/step_N.safetensors; this script turns each snapshot into
a model folder, runs `saymap scorecard` on it (the whole pipeline on the real hold-outs),
and writes RUN/learning_curve.json plus a PNG plot (docs/learning_curve.png by default).

    python scripts/learning_curve.py RUN --every 200 --png docs/learning_curve.png
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from saymap.engine.model import load_model, read_card, read_config
from saymap.training.holdouts import default_data_root
from saymap.training.scorecard import ScorecardSettings, run_scorecard

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
           (0, 0, 0), (255, 215, 0)]  # fmt: skip


def snapshot_model(run: Path, weights: Path, out: Path) -> Path:
    """A loadable model folder from a snapshot (the run's final config and card)."""
    model_dir = run / "model"
    out.mkdir(parents=True, exist_ok=True)
    config = read_config(model_dir)
    (out / "config.json").write_text(config.to_json())
    state = load_file(str(weights))
    if config.freeze_text_encoder:  # stored models rebuild the frozen encoder from its source
        state = {k: v for k, v in state.items() if not k.startswith("text_encoder.")}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model_card.json").write_text(json.dumps(read_card(model_dir)))
    return out


def score_snapshots(run: Path, every: int, sources: list[str] | None) -> list[dict]:
    snapshots = sorted(
        (int(m.group(1)), p)
        for p in (run / "snapshots").glob("step_*.safetensors")
        if (m := re.fullmatch(r"step_(\d+)\.safetensors", p.name))
    )
    final_step = json.loads((run / "model" / "model_card.json").read_text()).get("steps")
    picked = [(s, p) for s, p in snapshots if s % every == 0 and s != final_step]
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for step, weights in [*picked, (final_step, None)]:
            folder = (
                run / "model"
                if weights is None
                else snapshot_model(run, weights, Path(tmp) / f"step_{step}")
            )
            model = load_model(folder, device="cpu")
            card = run_scorecard(model, default_data_root(), ScorecardSettings(), sources)
            point = {
                "step": step,
                "pooled_orthophoto_building_iou": card["pooled_orthophoto_building_iou"],
                "sources": {f"{r['source']}/{r['class']}": r["iou"] for r in card["sources"]},
            }
            print(json.dumps(point), flush=True)
            points.append(point)
    return points


def plot(points: list[dict], path: Path, title: str) -> None:
    """A small line plot with Pillow (no plotting library in the engine's environment)."""
    from PIL import Image, ImageDraw, ImageFont

    width, height, left, bottom, top, right = 900, 520, 70, 60, 40, 260
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.font = ImageFont.load_default(size=13)
    steps = [p["step"] for p in points]
    x_max = max(steps) or 1

    def xy(step: float, iou: float) -> tuple[float, float]:
        x = left + (width - left - right) * step / x_max
        y = height - bottom - (height - bottom - top) * iou
        return x, y

    draw.line([xy(0, 0), xy(x_max, 0)], fill="black")
    draw.line([xy(0, 0), xy(0, 1)], fill="black")
    for tick in range(0, 11, 2):
        y = xy(0, tick / 10)[1]
        draw.line([(left - 5, y), (left, y)], fill="black")
        draw.text((left - 40, y - 6), f"{tick / 10:.1f}", fill="black")
    for step in steps:
        x = xy(step, 0)[0]
        draw.line([(x, height - bottom), (x, height - bottom + 5)], fill="black")
        draw.text((x - 12, height - bottom + 8), str(step), fill="black")
    draw.text((left, 12), title, fill="black")
    draw.text((width // 2 - 60, height - 22), "training step", fill="black")
    series = sorted({k for p in points for k in p["sources"]})
    for k, name in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        line = [xy(p["step"], p["sources"][name]) for p in points if name in p["sources"]]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((width - right + 15, top + 18 * k), f"- {name}", fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the training output folder (with snapshots/)")
    parser.add_argument("--every", type=int, default=200, help="score every Nth step")
    parser.add_argument("--sources", nargs="+", help="scorecard sources (default: all)")
    parser.add_argument("--png", type=Path, default=Path("docs/learning_curve.png"))
    parser.add_argument("--replot", action="store_true", help="plot RUN/learning_curve.json")
    args = parser.parse_args(argv)
    if args.replot:
        points = json.loads((args.run / "learning_curve.json").read_text())
        plot(points, args.png, f"Hold-out IoU (saymap scorecard) against steps: {args.run.name}")
        return 0
    points = score_snapshots(args.run, args.every, args.sources)
    (args.run / "learning_curve.json").write_text(json.dumps(points, indent=2) + "\n")
    plot(points, args.png, f"Hold-out IoU (saymap scorecard) against steps: {args.run.name}")
    print(f"wrote {args.run / 'learning_curve.json'} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
