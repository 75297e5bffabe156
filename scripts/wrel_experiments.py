"""WREL experiments on the synthetic benchmark: methods x full-expression ratios x seeds, and
the model ablation at 100 %. Writes a table per experiment into BENCHMARKS.md.

  python scripts/wrel_experiments.py ratios --synthetic out/default/synth --steps 600
  python scripts/wrel_experiments.py ablation --synthetic out/default/synth --steps 600

Every run is `saymap.training.trainer.train` with the tiny-cpu recipe and the overrides
named in its row; scores are on the test split (full expressions; class-name prompts in
their own columns), at native resolution. Run folders stay under out/experiments/ so a
killed sweep resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
from safetensors import safe_open

from saymap.engine.model import load_model
from saymap.engine.model.reference_bank import attach_class_bank
from saymap.training.evaluate import NATIVE, evaluate
from saymap.training.recipe import load_recipe
from saymap.training.synthetic.store import load_synthetic
from saymap.training.trainer import CLASS_BANK_FILE, train

OUT = Path("out/experiments")
BENCH = Path("BENCHMARKS.md")


def run_one(name: str, synthetic: Path, steps: int, overrides: dict, seed: int) -> Path:
    recipe = load_recipe("tiny-cpu")
    recipe.data.synthetic = str(synthetic)
    recipe.optim.steps = steps
    recipe.run.seed = seed
    recipe.run.eval_every = 0
    recipe.wrel.bank_steps = max(20, steps // 10)
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        if section == "model":
            recipe.model.overrides[key] = value
        else:
            setattr(getattr(recipe, section), key, value)
    recipe.__post_init__()
    out = OUT / f"{name}-s{seed}"
    if not (out / "model" / "config.json").is_file():
        train_set = load_synthetic(synthetic, "train")
        started = time.monotonic()
        train(recipe, out, train_set, None)
        print(f"{name} seed {seed}: trained in {time.monotonic() - started:.0f} s", flush=True)
    return out


def score(run: Path, synthetic: Path, limit: int, class_bank: bool) -> dict[str, float]:
    """Test-split scores of a run, kept in the run folder (a rerun of the sweep scores only
    the new runs)."""
    cached = run / f"scores-{limit}-{'class-bank' if class_bank else 'plain'}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    scores = _score(run, synthetic, limit, class_bank)
    cached.write_text(json.dumps(scores))
    return scores


def _score(run: Path, synthetic: Path, limit: int, class_bank: bool) -> dict[str, float]:
    model = load_model(run / "model")
    classes, entries = [], None
    if class_bank:
        with safe_open(str(run / CLASS_BANK_FILE), "pt") as f:
            classes = json.loads(f.metadata()["classes"])
            entries = f.get_tensor("entries")
    attach_class_bank(model, classes, entries)
    out = {}
    for kind in ("full", "weak"):
        data = load_synthetic(synthetic, "test", kinds=(kind,))
        m = evaluate(model, data, limit=limit).results[NATIVE]
        out.update(
            {f"{kind} oIoU": m.oiou, f"{kind} mIoU": m.miou, f"{kind} P@0.5": m.precision["0.5"]}
        )
    return out


def table(title: str, rows: list[tuple[str, list[dict[str, float]]]], command: str) -> str:
    keys = ["full oIoU", "full mIoU", "full P@0.5", "weak oIoU", "weak mIoU"]
    lines = [f"## {title}", "", f"Command: `{command}`", ""]
    lines.append("| run | seeds | " + " | ".join(keys) + " |")
    lines.append("|---|---:|" + "---:|" * len(keys))
    for name, results in rows:
        cells = []
        for k in keys:
            values = [r[k] for r in results]
            mean = statistics.fmean(values)
            spread = f" ± {(max(values) - min(values)) / 2:.3f}" if len(values) > 1 else ""
            cells.append(f"{mean:.3f}{spread}")
        lines.append(f"| {name} | {len(results)} | " + " | ".join(cells) + " |")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines += [
        "",
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, CPU; commit {commit}; {time.strftime('%Y-%m-%d')}. "
        "± is half the range over seeds.",
        "",
    ]
    return "\n".join(lines)


def write_section(title: str, text: str) -> None:
    current = BENCH.read_text() if BENCH.exists() else "# Benchmarks\n\n"
    start = current.find(f"## {title}")
    if start >= 0:
        end = current.find("\n## ", start + 1)
        current = current[:start] + current[end + 1 :] if end >= 0 else current[:start]
    BENCH.write_text(current.rstrip() + "\n\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("experiment", choices=["ratios", "ablation"])
    parser.add_argument("--synthetic", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    parser.add_argument("--limit", type=int, default=400, help="test samples per kind")
    args = parser.parse_args()
    torch.set_num_threads(2)
    command = "python scripts/wrel_experiments.py " + " ".join(
        [
            args.experiment,
            f"--synthetic {args.synthetic}",
            f"--steps {args.steps}",
            "--seeds " + " ".join(map(str, args.seeds)),
            f"--limit {args.limit}",
        ]
    )
    rows: list[tuple[str, list[dict[str, float]]]] = []
    if args.experiment == "ratios":
        for ratio in args.ratios:
            for method in ("accurate-only", "naive-wrel", "lrb-wrel"):
                # The headline rows (10 %) get every seed, the others the first.
                seeds = args.seeds if ratio == min(args.ratios) else args.seeds[:1]
                name = f"{method} {ratio:.0%}"
                runs = [
                    run_one(
                        f"{method}-{ratio}",
                        args.synthetic,
                        args.steps,
                        {"wrel.method": method, "data.full_ratio": ratio},
                        s,
                    )
                    for s in seeds
                ]
                if method == "lrb-wrel":
                    rows.append(
                        (
                            f"{name}, per-sample bank",
                            [score(r, args.synthetic, args.limit, False) for r in runs],
                        )
                    )
                    rows.append(
                        (
                            f"{name}, class-level bank",
                            [score(r, args.synthetic, args.limit, True) for r in runs],
                        )
                    )
                else:
                    rows.append((name, [score(r, args.synthetic, args.limit, False) for r in runs]))
                for row in rows[-2 if method == "lrb-wrel" else -1 :]:
                    print(row, flush=True)
        write_section(
            "WREL: methods and full-expression ratios",
            table(
                f"WREL: methods and full-expression ratios ({args.steps} steps, tiny, "
                "synthetic test split)",
                rows,
                command,
            ),
        )
    else:
        switches = [
            ("all components", {}),
            ("no pixel-word attention (PWAM)", {"model.use_pixel_word_attention": False}),
            ("no bidirectional alignment (BSC)", {"model.use_bidirectional_alignment": False}),
            ("no cross-scale enhancement (LGCE)", {"model.use_cross_scale_enhancement": False}),
            ("no twin decoder (T-BTD)", {"model.use_twin_decoder": False}),
            ("with D-MOLS", {"loss.dmols_weight": 0.2}),
        ]
        for name, overrides in switches:
            overrides = {"wrel.method": "accurate-only", "data.full_ratio": 1.0, **overrides}
            key = name.split("(")[-1].rstrip(")").lower().replace(" ", "-")
            name_steps = f"ablation-{key}-{args.steps}"
            # The headline rows (the full model, and D-MOLS, the one switch a recipe decides
            # on) get every seed, the others the first.
            seeds = args.seeds if name in ("all components", "with D-MOLS") else args.seeds[:1]
            runs = [run_one(name_steps, args.synthetic, args.steps, overrides, s) for s in seeds]
            rows.append((name, [score(r, args.synthetic, args.limit, False) for r in runs]))
            print(rows[-1], flush=True)
        write_section(
            "Model ablation",
            table(
                f"Model ablation at 100 % full expressions ({args.steps} steps, tiny, "
                "accurate-only)",
                rows,
                command,
            ),
        )


if __name__ == "__main__":
    main()
