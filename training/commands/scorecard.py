"""`saymap scorecard`: the whole pipeline on the real hold-outs, scored against their labels."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from saymap.engine.errors import DatasetError, OutputError

log = logging.getLogger("saymap")


def register(subparsers: argparse._SubParsersAction) -> None:
    from saymap.training.holdouts import SOURCE_BY_NAME

    parser = subparsers.add_parser(
        "scorecard",
        help="segment the real hold-outs end to end and score the polygons against labels",
        description="Runs what `saymap segment` runs (working resolution, tiles, polygons) on "
        "the kept-back areas of ../shared/data/real and reports pixel IoU, precision and "
        "recall per source, block and class.",
    )
    parser.add_argument("--checkpoint", default="default", help="model folder or name")
    parser.add_argument("--data", type=Path, help="the real data folder (default: ../shared)")
    parser.add_argument(
        "--sources", nargs="+", choices=sorted(SOURCE_BY_NAME), help="score only these"
    )
    parser.add_argument("--gsd", default="auto", help="auto, native or metres per pixel")
    parser.add_argument(
        "--literal", action="store_true", help="prompts as typed (no class name → all of them)"
    )
    parser.add_argument(
        "--sentences",
        action="store_true",
        help="also score sentences computed from the hold-outs' polygons, by kind (chips)",
    )
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--out", type=Path, required=True, help="the JSON to write")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument(
        "--benchmarks", type=Path, help="also put the table in this BENCHMARKS.md (Real imagery)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from saymap.training.holdouts import default_data_root

    root = args.data or default_data_root()
    if not root.is_dir():
        raise DatasetError(f"no real data folder at {root}; pass --data")
    for path in (args.out, args.markdown):
        if path is not None and path.exists() and not args.overwrite:
            raise OutputError(f"{path} exists; pass --overwrite or another name")
    from saymap.engine.device import choose_device
    from saymap.engine.model import load_model
    from saymap.engine.registry import resolve_checkpoint
    from saymap.training.scorecard import (
        ScorecardSettings,
        markdown_table,
        run_scorecard,
        write_scorecard,
    )

    device, _ = choose_device(args.device)
    model = load_model(resolve_checkpoint(args.checkpoint), device=device)
    settings = ScorecardSettings(
        gsd=args.gsd, literal=args.literal, threshold=args.threshold, device=args.device
    )
    card = run_scorecard(
        model, root, settings, args.sources, progress=lambda name: log.info("scoring %s", name)
    )
    if args.sentences:
        from saymap.training.scorecard import sentence_scorecard, sentence_table

        card["sentences"] = sentence_scorecard(model, root, args.sources)
        sys.stdout.write(sentence_table(card["sentences"]))
    write_scorecard(card, args.out, args.markdown)
    sys.stdout.write(markdown_table(card))
    if args.benchmarks is not None:
        _write_benchmarks(card, args.benchmarks)
    return 0


def _write_benchmarks(card: dict, path: Path) -> None:
    import platform
    import subprocess

    from saymap.training.scorecard import benchmarks_section, replace_section

    commit = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        or "unknown"
    )
    cpu = platform.processor() or "CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [x.split(":", 1)[1].strip() for x in cpuinfo.read_text().splitlines()
                 if x.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    machine = f"{platform.machine()}, {os.cpu_count()} cores ({cpu})"
    command = "saymap " + " ".join(sys.argv[1:])
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_section(text, benchmarks_section(card, command, machine, commit)))
    log.info("updated %s", path)
