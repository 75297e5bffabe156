"""`saymap segment RASTER [RASTER ...] -p PROMPT [-p PROMPT ...] -o OUT.gpkg`: sentences in,
polygons out, over one raster or a whole collection, in one resumable job.

Every input is checked before the model loads (files, prompts, rasters, CRSs, bands, AOI,
tiles, output: the job plan, engine/collection_job.py), so bad input fails in a moment with
one line on stderr and writes nothing. The model loads once for the whole collection. The
old form `saymap segment RASTER "PROMPT" -o OUT.gpkg` still works. Under `torchrun` every
rank runs the same command on its share; rank 0 alone shows progress and the summary.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm

from saymap.engine.aoi import parse_aoi
from saymap.engine.commands.info import quiet_libraries
from saymap.engine.errors import PromptError, SaymapError, disk_full
from saymap.engine.output import check_distinct, kept_probabilities, probability_paths
from saymap.engine.paths import check_outside_data_dir
from saymap.engine.plan import ModelFacts, SegmentOptions
from saymap.engine.raster import parse_bands
from saymap.engine.registry import resolve_checkpoint

DEFAULT_CHECKPOINT = "default"
# How long a rank waits at a barrier for the slowest one (torchrun ends the job at once
# when a rank dies, so this only bounds ranks that are alive but far behind).
RANK_WAIT = timedelta(hours=24)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment rasters from sentences into a GeoPackage of polygons",
        description="Segment what each PROMPT describes in the RASTERs; write their polygons "
        "to one GeoPackage, one layer per prompt. A job interrupted is resumed by running it "
        "again. Runs unchanged under torchrun --nproc-per-node N.",
    )
    parser.add_argument(
        "rasters",
        nargs="+",
        metavar="RASTER",
        help="georeferenced rasters: files (GeoTIFF, a VRT, anything GDAL reads), folders, "
        "glob patterns or .txt/.lst lists of paths. Without -p the last one is the prompt "
        '(the old form: RASTER "PROMPT")',
    )
    parser.add_argument(
        "-p",
        "--prompt",
        action="append",
        dest="prompts",
        metavar="PROMPT",
        help='what to map, e.g. "storage tank"; repeat for several (one layer each)',
    )
    parser.add_argument("-o", "--output", required=True, help="the GeoPackage to write (.gpkg)")
    parser.add_argument(
        "--out-crs", help="CRS of the GeoPackage, e.g. EPSG:3857 (default: the first raster's)"
    )
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
        "--keep-probabilities",
        metavar="TIF",
        help="also keep the probability GeoTIFF here; rasters that form several mosaics "
        "(other CRSs, or apart) keep one per mosaic, in its CRS: P.tif gives P_1.tif … "
        "P_N.tif, each named with its rasters in the summary",
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


def _names_files(text: str) -> bool:
    try:
        return Path(text).exists() or bool(glob.has_magic(text) and glob.glob(text))
    except (OSError, ValueError):
        return False


def split_prompts(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(raster inputs, prompts): the -p prompts, or (the old form, no -p) the last
    positional when it names no file and is not the only one."""
    inputs = list(args.rasters)
    if args.prompts:
        return inputs, list(args.prompts)
    if len(inputs) >= 2 and not _names_files(inputs[-1]):
        return inputs[:-1], [inputs[-1]]
    raise PromptError('no prompt: say what to map with -p "PROMPT" (or RASTER "PROMPT")')


def check_inputs(args: argparse.Namespace) -> tuple[Any, Path]:
    """Every check that needs no model weights, in the order a person would fix them;
    returns the job plan and the checkpoint folder to load."""
    from saymap.engine.collection import expand_rasters
    from saymap.engine.collection_job import plan_collection

    inputs, prompts = split_prompts(args)
    files = {
        **{f"raster {i + 1}" if len(inputs) > 1 else "raster": p for i, p in enumerate(inputs)},
        "AOI file": aoi_file(args.aoi),
        "output": args.output,
        "probabilities file": args.keep_probabilities,
    }
    # Before anything is opened: opening the engine's job database as a raster would
    # already harm it.
    for label, path in files.items():
        if path is not None:
            check_outside_data_dir(path, label)
    rasters = expand_rasters(inputs)
    for path in rasters:
        check_outside_data_dir(path, "raster")
    outputs = {k: v for k, v in files.items() if not k.startswith("raster")}
    check_distinct({**{"raster" if len(rasters) == 1 else f"raster {p}": p for p in rasters},
                    **outputs})  # fmt: skip
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
    options.check()
    checkpoint = resolve_checkpoint(args.checkpoint)
    model = ModelFacts.from_folder(checkpoint, checkpoint.name)  # a name or a folder: its name
    # The plan checks the kept probabilities: their number is the number of mosaics.
    plan = plan_collection(rasters, prompts, options, model, args.output, out_crs=args.out_crs)
    return plan, checkpoint


class _Bars:
    """tqdm bars on stderr: overall tiles, and (several units) the current raster's."""

    def __init__(self, plan: Any, disable: bool) -> None:
        self.several = len(plan.units) > 1
        self.overall = tqdm(total=None, unit="tile", file=sys.stderr, disable=disable or None,
                            position=0, desc="segmenting")  # fmt: skip
        self.unit = tqdm(total=None, unit="tile", file=sys.stderr, position=1, leave=False,
                         disable=(disable or not self.several) or None)  # fmt: skip

    def progress(self, done: int, total: int, message: str) -> None:
        self.overall.total = total
        self.overall.n = done
        if message == "vectorising":
            self.overall.set_description("vectorising")
        elif self.several:
            self.overall.set_description(message.partition(" (")[0])  # "raster 3 of 16"
        self.overall.refresh()

    def unit_progress(self, unit: Any, done: int, total: int) -> None:
        self.unit.total = total
        self.unit.n = done
        self.unit.set_description(unit.label)
        self.unit.refresh()

    def close(self) -> None:
        self.unit.close()
        self.overall.close()


def _segment(args: argparse.Namespace, plan: Any, model: Any, info: Any) -> Any:
    """run_collection with progress bars. Kept probability GeoTIFFs (one per mosaic) are
    written under hidden names and moved into place at the end, like the GeoPackage: a
    failed run never creates or truncates any of them."""
    from saymap.engine.collection_job import run_collection  # torch: only once input is good

    options = plan.options
    keep = (
        kept_probabilities(options.probabilities_path, options.overwrite, len(plan.groups))
        if options.probabilities_path is not None and info.is_main
        else contextlib.nullcontext()
    )
    bars = _Bars(plan, args.no_progress or not info.is_main)
    try:
        with keep as probabilities_temp:
            if probabilities_temp is not None:
                options = dataclasses.replace(options, probabilities_path=str(probabilities_temp))
                plan = dataclasses.replace(plan, options=options)
            return run_collection(
                plan, args.output, model=model, progress=bars.progress, dist=info,
                unit_progress=bars.unit_progress,
            )  # fmt: skip
    finally:
        bars.close()


def _summary(args: argparse.Namespace, plan: Any, result: Any) -> str:
    if len(result.prompts) == 1:
        (prompt,) = result.prompts
        reading = result.model_prompts[0] if result.model_prompts else prompt
        meaning = f" (read as {reading!r})" if reading != prompt else ""
        lines = [
            f"wrote {result.n_features} polygon(s) for {prompt!r}{meaning} to {result.output_path}"
        ]
    else:
        per = ", ".join(
            f"{prompt!r} {result.features_per_prompt.get(prompt, 0)} in {result.layers[prompt]}"
            for prompt in result.prompts
        )
        lines = [f"wrote {result.n_features} polygon(s) to {result.output_path}: {per}"]
    if len(result.rasters) > 1 or result.units > 1 or result.units_resumed:
        lines.append(
            f"{len(result.rasters)} raster(s) in {len(plan.groups)} mosaic(s), "
            f"{result.units} unit(s); output CRS {result.out_crs[:60]}"
        )
    if result.units_resumed:
        lines.append(
            f"resumed {result.units_resumed} of {result.units} unit(s) done by an earlier run"
        )
    if plan.options.probabilities_path is not None and len(plan.groups) > 1:
        lines += _kept_lines(plan)
    lines += [
        f"resolution: {result.resolution_note}",
        f"model {result.model_name}; device {result.device} ({result.device_reason}); "
        f"{result.tiles} tiles of {result.tile_size} px in {result.seconds:.1f} s "
        f"({result.tiles_per_second:.2f} tiles/s)",
    ]
    return "\n".join(lines) + "\n"


def _kept_lines(plan: Any) -> list[str]:
    """Which kept probability GeoTIFF holds which rasters: one per mosaic, each in its CRS."""
    from saymap.engine.infer import crs_label

    paths = probability_paths(plan.options.probabilities_path, len(plan.groups))
    lines = [f"kept the probabilities of each of the {len(paths)} mosaics in its own CRS:"]
    for path, group in zip(paths, plan.groups, strict=True):
        rasters = group.group.rasters
        named = ", ".join(rasters)
        if len(rasters) > 3:
            named = f"{len(rasters)} rasters, {rasters[0]} … {rasters[-1]}"
        where = f"{named} ({crs_label(group.crs_wkt)[:60]})"
        if any(u.plan is not None for u in plan.units if u.unit.group == group.group.index):
            lines.append(f"  {path}: {where}")
        else:
            lines.append(f"  {path}: not written, {where} is outside the AOI")
    return lines


def run(args: argparse.Namespace) -> int:
    quiet_libraries()
    plan, checkpoint = check_inputs(args)  # every rank checks: all refuse bad input alike
    # torch from here on: the device and the model only once the input is good
    from saymap.engine.device import choose_device
    from saymap.engine.distributed import (
        finish_distributed,
        from_environment,
        init_distributed,
        rank_device,
    )
    from saymap.engine.model import load_model

    # A missing device is refused before the process group and the model.
    device, _ = choose_device(rank_device(plan.options.device, from_environment()))
    info = init_distributed(plan.options.device, timeout=RANK_WAIT)  # world 1 outside torchrun
    try:
        model = load_model(checkpoint, device=device)
        try:
            result = _segment(args, plan, model, info)
        except (OSError, SaymapError) as exc:
            # Float32 probabilities, uncompressed: the most the run writes beside the output.
            full = disk_full(exc, args.output, needed_bytes=plan.native_pixels * 4)
            if full is None:
                raise
            raise full from exc
    finally:
        finish_distributed()
    if not info.is_main:
        return 0
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    sys.stdout.write(_summary(args, plan, result))
    return 0
