"""`saymap eval`: score a checkpoint on a dataset, print the table, write the JSON."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from saymap.engine.errors import OutputError

log = logging.getLogger("saymap")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="score a checkpoint: oIoU, mIoU, Prec@0.5-0.9 (native and 480 px)"
    )
    parser.add_argument("--checkpoint", required=True, help="model folder or registered name")
    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        help="synthetic folder, RefSegRS folder, RRSIS-D folder, chip folder, or a raster "
        "(with --labels)",
    )
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--labels", type=Path, help="label layer when --data is a raster")
    parser.add_argument("--class-field", help="class field of --labels")
    parser.add_argument("--class-name", help="one class for every feature of --labels")
    parser.add_argument("--label-crs", help="CRS of --labels when the file has none")
    parser.add_argument("--chip-size", type=int, default=256, help="chips cut from a raster")
    parser.add_argument(
        "--input-size", type=int, help="resize every image to this (a multiple of 32)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, help="score this many samples, spread evenly")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--out", type=Path, help="JSON file (default: eval-<data>-<split>.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from saymap.engine.device import choose_device
    from saymap.engine.model import load_model
    from saymap.engine.registry import resolve_checkpoint
    from saymap.training.evaluate import evaluate, open_eval_data
    from saymap.training.metrics import format_table, metrics_json

    out = args.out or Path(f"eval-{args.data.name}-{args.split}.json")
    if out.exists() and not args.overwrite:
        raise OutputError(f"{out} exists; pass --overwrite or another --out")
    dataset, kind = open_eval_data(
        args.data,
        args.split,
        labels=args.labels,
        class_field=args.class_field,
        class_name=args.class_name,
        label_crs=args.label_crs,
        chip_size=args.chip_size,
    )
    device, why = choose_device(args.device)
    log.info("device %s (%s); %d %s samples", device, why, len(dataset), kind)
    model = load_model(resolve_checkpoint(args.checkpoint), device=device)
    step = max(1, (args.limit or len(dataset)) // 10)

    def progress(done: int, total: int) -> None:
        if done % step < args.batch_size or done == total:
            log.info("%d / %d samples", done, total)

    result = evaluate(
        model,
        dataset,
        input_size=args.input_size,
        batch_size=args.batch_size,
        limit=args.limit,
        progress=progress,
    )
    sys.stdout.write(format_table(result.results) + "\n")
    if len(result.by_type) > 1:
        sys.stdout.write("\nby expression type (native):\n")
        sys.stdout.write(format_table(result.by_type) + "\n")
    text = metrics_json(
        result.results,
        by_type={k: v.to_dict() for k, v in result.by_type.items()},
        checkpoint=str(args.checkpoint),
        data=str(args.data),
        data_kind=kind,
        split=args.split,
        input_size=args.input_size,
        device=str(device),
        seconds=round(result.seconds, 2),
    )
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, out)
    log.info("wrote %s", out)
    return 0
