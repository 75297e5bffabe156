"""`saymap data`: make and inspect training data (the work lives in saymap.training)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("saymap")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="make training data: synthetic scenes, chips")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = sub.add_parser("synth", help="write a synthetic referring benchmark")
    synth.add_argument("--out", type=Path, required=True, help="new (or empty) folder")
    synth.add_argument("--n", type=int, default=2000, help="number of scenes (default 2000)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--style",
        choices=["a", "b"],
        default="a",
        help="rendering style; b is held out for generalisation checks",
    )
    synth.add_argument("--size", type=int, default=256, help="scene size in pixels")
    synth.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
    synth.set_defaults(func=run_synth)

    chips = sub.add_parser("chips", help="cut chips from rasters around a labelled layer")
    chips.add_argument(
        "--raster", type=Path, action="append", required=True, help="a raster (repeat for several)"
    )
    chips.add_argument("--labels", type=Path, required=True, help="polygon layer")
    chips.add_argument("--class-field", help="the layer's field holding the class name")
    chips.add_argument("--class-name", help="one class for every feature (no class field)")
    chips.add_argument("--text-field", help="a field holding full sentences, if any")
    chips.add_argument("--id-field", help="field of feature ids used by --expressions")
    chips.add_argument(
        "--expressions", type=Path, help="CSV (id or wkt, sentence) or GeoJSON with sentences"
    )
    chips.add_argument("--label-crs", help="CRS of the labels when the file has none")
    chips.add_argument(
        "--classes", help="comma-separated classes to keep; any without features is reported"
    )
    chips.add_argument("--chip-size", type=int, default=256)
    chips.add_argument(
        "--group", action="store_true", help="one sample per class and chip with all its features"
    )
    chips.add_argument(
        "--gsd",
        default="auto",
        help="metres per chip pixel: auto (the --model's card gsd_m, so the chips show what "
        "that model sees), native, or a number (default: %(default)s)",
    )
    chips.add_argument("--model", default=None, help="model whose gsd_m auto uses (the active)")
    chips.add_argument("--out", type=Path, required=True, help="new (or empty) folder")
    chips.set_defaults(func=run_chips)


def run_synth(args: argparse.Namespace) -> int:
    from saymap.training.synthetic.store import write_synthetic

    step = max(1, args.n // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            log.info("%d / %d scenes", done, total)

    manifest = write_synthetic(
        args.out,
        args.n,
        seed=args.seed,
        style=args.style,
        size=args.size,
        workers=args.workers,
        progress=progress,
    )
    n_expr = sum(manifest["expressions"].values())
    log.info(
        "wrote %d scenes, %d expressions to %s in %.1f s (%d workers)",
        manifest["n"],
        n_expr,
        args.out,
        manifest["seconds"],
        manifest["workers"],
    )
    return 0


def run_chips(args: argparse.Namespace) -> int:
    from saymap.training.datasets import LayerSource, build_layer_dataset, write_chips

    dataset = build_layer_dataset(
        [LayerSource(p) for p in args.raster],
        args.labels,
        class_field=args.class_field,
        class_name=args.class_name,
        text_field=args.text_field,
        id_field=args.id_field,
        expressions=args.expressions,
        label_crs=args.label_crs,
        classes=[c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None,
        chip_size=args.chip_size,
        group=args.group,
        gsd_m=(gsd := _chip_gsd(args.gsd, args.model)),
    )
    for line in dataset.report.lines():
        log.info("%s", line)
    log.info("chips at %s", f"{gsd:g} m per pixel" if gsd else "the rasters' own resolution")
    n = write_chips(dataset, args.out)
    log.info("wrote %d samples to %s", n, args.out)
    return 0


def _chip_gsd(value: str, model: str | None) -> float | None:
    """--gsd as metres per pixel, or None for the rasters' own grid."""
    from saymap.engine import registry
    from saymap.engine.resolution import CardResolution, parse_gsd

    choice = parse_gsd(value)
    if choice.mode == "metres":
        return choice.metres
    if choice.mode == "native":
        return None
    card = registry.find(model or registry.active_name()).card
    return CardResolution.from_card(card).gsd_m
