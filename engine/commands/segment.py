"""`saymap segment RASTER "PROMPT" -o OUT.gpkg`: a sentence in, polygons out.

Every input is checked before the model loads (file, prompt, raster, CRS, bands, AOI,
tiles, output: the request plan, engine/plan.py), so bad input fails in a moment with one
line on stderr and writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from saymap.engine.aoi import parse_aoi
from saymap.engine.commands.info import quiet_libraries
from saymap.engine.errors import SaymapError, disk_full
from saymap.engine.output import (
    check_distinct,
    check_output_path,
    check_probabilities_path,
    kept_probabilities,
)
from saymap.engine.paths import check_outside_data_dir
from saymap.engine.plan import ModelFacts, SegmentOptions, SegmentPlan, plan_segment
from saymap.engine.raster import parse_bands
from saymap.engine.registry import resolve_checkpoint

DEFAULT_CHECKPOINT = "default"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment a raster from a sentence into a GeoPackage of polygons",
        description="Segment what PROMPT describes in RASTER; write polygons to a GeoPackage.",
    )
    parser.add_argument("raster", help="a georeferenced raster (GeoTIFF or anything GDAL reads)")
    parser.add_argument("prompt", help='what to map, e.g. "storage tank"')
    parser.add_argument("-o", "--output", required=True, help="the GeoPackage to write (.gpkg)")
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help="model name or checkpoint folder (default: %(default)s)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--tile", type=int, help="tile side in pixels (default: the model's)")
    parser.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability cut-off")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per model call")
    parser.add_argument(
        "--aoi",
        help='"minx,miny,maxx,maxy[@CRS]", a WKT polygon[@CRS], or a GeoJSON/GPKG file[@CRS]; '
        "write --aoi=VALUE when VALUE starts with '-'",
    )
    parser.add_argument("--bands", help="1-based band map, e.g. 4,3,2 (default: first three)")
    parser.add_argument("--assume-crs", help="CRS for a raster that has none, e.g. EPSG:32633")
    parser.add_argument("--min-area", type=float, default=16.0, help="smallest object, in pixels")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument(
        "--keep-probabilities", metavar="TIF", help="also keep the probability GeoTIFF here"
    )
    parser.add_argument(
        "--gsd",
        default="auto",
        help="working resolution: auto (the model's, from its card), native (the raster's own), "
        "or metres per pixel, e.g. 0.3 (default: %(default)s)",
    )
    parser.add_argument(
        "--literal",
        action="store_true",
        help='run the prompt exactly as typed (by default a bare class name such as "building" '
        'means every instance: "all buildings")',
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def aoi_file(text: str | None) -> str | None:
    """The file an --aoi value names (FILE or FILE@CRS), if it names one."""
    if not text:
        return None
    for candidate in (text.strip(), text.partition("@")[0].strip()):
        try:
            if Path(candidate).is_file():
                return candidate
        except (OSError, ValueError):  # a WKT CRS after the @ makes a name too long for a path
            continue
    return None


def check_inputs(args: argparse.Namespace) -> tuple[SegmentPlan, Path]:
    """Every check that needs no model weights, in the order a person would fix them;
    returns the plan and the checkpoint folder to load."""
    files = {
        "raster": args.raster,
        "AOI file": aoi_file(args.aoi),
        "output": args.output,
        "probabilities file": args.keep_probabilities,
    }
    # Before anything is opened: opening the engine's job database as a raster would
    # already harm it.
    for label, path in files.items():
        if path is not None:
            check_outside_data_dir(path, label)
    check_distinct(files)
    options = SegmentOptions(
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        threshold=args.threshold,
        device=args.device,
        bands=parse_bands(args.bands),
        assume_crs=args.assume_crs,
        aoi=parse_aoi(args.aoi) if args.aoi else None,
        overwrite=args.overwrite,
        min_area_px=args.min_area,
        probabilities_path=args.keep_probabilities,
        gsd=args.gsd,
        literal=args.literal,
    )
    checkpoint = resolve_checkpoint(args.checkpoint)
    model = ModelFacts.from_folder(checkpoint, checkpoint.name)  # a name or a folder: its name
    plan = plan_segment(args.raster, [args.prompt], options, model)
    check_output_path(args.output, args.overwrite)
    if args.keep_probabilities is not None:
        check_probabilities_path(args.keep_probabilities, args.overwrite)
    return plan, checkpoint


def _segment(args: argparse.Namespace, plan: SegmentPlan, model: Any) -> Any:
    """run_plan with a progress bar. A kept probability GeoTIFF is written under a
    hidden name and moved into place at the end, like the GeoPackage: a failed run never
    truncates a file already at that path."""
    from saymap.engine.infer import run_plan  # torch: only once the input is good

    options = plan.options
    keep = (
        kept_probabilities(options.probabilities_path, options.overwrite)
        if options.probabilities_path is not None
        else contextlib.nullcontext()
    )
    with (
        keep as probabilities_temp,
        tqdm(total=None, unit="tile", file=sys.stderr, disable=args.no_progress or None) as bar,
    ):
        if probabilities_temp is not None:
            options = dataclasses.replace(options, probabilities_path=str(probabilities_temp))
            plan = dataclasses.replace(plan, options=options)

        def progress(done: int, total: int, message: str) -> None:
            bar.total = total
            bar.n = done
            bar.set_description("vectorising" if message == "vectorising" else "segmenting")
            bar.refresh()

        result = run_plan(plan, args.output, model=model, progress=progress)
    return result


def run(args: argparse.Namespace) -> int:
    quiet_libraries()
    plan, checkpoint = check_inputs(args)
    # torch from here on: the device and the model only once the input is good
    from saymap.engine.device import choose_device
    from saymap.engine.model import load_model

    device, _ = choose_device(plan.options.device)  # refuses a missing device before the model
    model = load_model(checkpoint, device=device)

    try:
        result = _segment(args, plan, model)
    except (OSError, SaymapError) as exc:
        # Float32 probabilities, uncompressed: the most the run writes beside the output.
        full = disk_full(exc, args.output, needed_bytes=plan.native_pixels * 4)
        if full is None:
            raise
        raise full from exc
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    reading = result.model_prompts[0] if result.model_prompts else args.prompt
    meaning = f" (read as {reading!r})" if reading != args.prompt else ""
    sys.stdout.write(
        f"wrote {result.n_features} polygon(s) for {args.prompt!r}{meaning} to "
        f"{result.output_path}\n"
        f"resolution: {result.resolution_note}\n"
        f"model {result.model_name}; device {result.device} ({result.device_reason}); "
        f"{result.tiles} tiles of {result.tile_size} px in {result.seconds:.1f} s "
        f"({result.tiles_per_second:.2f} tiles/s)\n"
    )
    return 0
