"""Tiled inference on a georeferenced raster: a sentence in, a GeoPackage of polygons out.

A reader thread fills a bounded queue with tiles while the model runs; each prompt is
encoded once; tiles go through the model in batches; overlapping logits are blended with a
weight window one band of tile rows at a time and streamed as probabilities to a tiled,
compressed GeoTIFF, which vectorisation then reads back by windows. Memory stays flat with
raster size. Cancelling (between batches) leaves neither the output nor temporary files.

`run_plan` is one raster into one layer. A collection (engine/collection_job.py) runs the
same pieces per unit: `ready_model` once, `write_probabilities` per unit, and
`vectorize_to_geopackage` once per group of adjacent rasters.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from saymap.engine.aoi import Region
from saymap.engine.blend import RowBandBlender
from saymap.engine.class_names import interpret_prompts
from saymap.engine.device import autocast_for, choose_device
from saymap.engine.errors import Cancelled, OptionError
from saymap.engine.heap import keep_heap, trim_heap
from saymap.engine.model.outputs import SegmentationOutput, TextFeatures
from saymap.engine.output import LAYER, GeoPackageWriter, check_output_path
from saymap.engine.plan import ModelFacts, SegmentOptions, SegmentPlan, plan_segment
from saymap.engine.prefetch import TileData, prefetched_tiles
from saymap.engine.prompt import token_warnings
from saymap.engine.raster import RasterSpec
from saymap.engine.tiling import TileGrid
from saymap.engine.timing import StageTimes
from saymap.engine.vectorize import vectorize_to_geopackage

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
GDAL_CACHE_BYTES = 16 * 1024 * 1024  # GDAL's default, 5 % of RAM, fills on a big raster
EMPTY_RUN_TILES = 16  # tiles held at most before blending, however few hold valid pixels


class SegmenterConfig(Protocol):
    """The inference defaults a checkpoint carries."""

    name: str
    tile_size: int

    @property
    def stride(self) -> int: ...


class Segmenter(Protocol):
    """What the pipeline needs from a model (SaymapModel satisfies it)."""

    config: SegmenterConfig

    def encode_text(self, prompts: list[str]) -> TextFeatures: ...

    def __call__(self, pixel_values: torch.Tensor, text: TextFeatures) -> SegmentationOutput: ...


@dataclass(frozen=True)
class SegmentResult:
    output_path: str
    run_id: str
    model_name: str
    prompts: tuple[str, ...]
    n_features: int
    features_per_prompt: dict[str, int]
    tiles: int
    tiles_run: int  # tiles with at least one valid pixel (the others skip the model)
    tile_size: int
    overlap: int
    device: str
    device_reason: str
    seconds: float
    window: tuple[int, int, int, int]  # col_off, row_off, width, height of the region
    probabilities_path: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # see engine/timing.py
    native_gsd_m: float | None = None  # metres per pixel of the file, at its centre
    working_gsd_m: float | None = None  # metres per pixel of the grid segmented on
    resolution_note: str = ""  # what was done about resolution, in one line
    model_prompts: tuple[str, ...] = ()  # what the model read ("building" → "all buildings")
    layers: dict[str, str] = field(default_factory=dict)  # prompt → GeoPackage layer
    rasters: tuple[str, ...] = ()  # the input rasters, in order
    units: int = 1  # resumable shares of work (a raster, or a block of a huge one)
    units_resumed: int = 0  # of those, done by an earlier run of the same job
    out_crs: str = ""  # the GeoPackage's CRS ("EPSG:32633", or WKT without a code)

    @property
    def tiles_per_second(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else 0.0


def _run_batch(
    model: Segmenter,
    batch: list[TileData],
    texts: list[TextFeatures],
    device: torch.device,
) -> np.ndarray:
    """(B, 3, S, S) uint8 tiles → (B, P, S, S) float32 logits, one pass per prompt.

    With several prompts the prompt-independent start of the network (`embed_pixels`) runs
    once and every prompt continues from it. On CUDA the tiles go up from pinned memory
    without blocking the host.
    """
    pixels = torch.from_numpy(np.stack([item[1] for item in batch]))
    if device.type == "cuda":
        pixels = pixels.pin_memory().to(device, non_blocking=True)
    else:
        pixels = pixels.to(device)
    pixels = pixels.float().div_(255.0)
    logits = np.empty((len(batch), len(texts), *pixels.shape[-2:]), np.float32)
    embed = getattr(model, "embed_pixels", None)
    with torch.inference_mode(), autocast_for(device):
        shared = embed(pixels) if embed is not None and len(texts) > 1 else None
        for p, text in enumerate(texts):
            extra = {"pixel_embedding": shared} if shared is not None else {}
            out = model(pixels, text.expand(len(batch)), **extra)
            if tuple(out.logits.shape) != (len(batch), 1, *pixels.shape[-2:]):
                raise RuntimeError(
                    f"model returned logits {tuple(out.logits.shape)} for tiles "
                    f"{tuple(pixels.shape)}; expected (B, 1, H, W) at input resolution"
                )
            logits[:, p] = out.logits[:, 0].float().cpu().numpy()
    return logits


def _probability_profile(
    spec: RasterSpec, region: Region, channels: int, stride: int, kept: bool
) -> dict[str, Any]:
    """Tiled float32 GeoTIFF whose block rows divide the tile stride where they can, so each
    flushed band fills whole blocks (none is compressed, evicted and rewritten).

    A temporary file is compressed with ZSTD level 1, which halves the blend's time against
    DEFLATE (BENCHMARKS.md, Throughput); one the user keeps uses DEFLATE, which every GDAL
    reads."""
    block_rows = max(16, math.gcd(stride, 256) // 16 * 16)
    return {
        "driver": "GTiff",
        "dtype": "float32",
        "count": channels,
        "width": int(region.window.width),
        "height": int(region.window.height),
        "crs": spec.crs,
        "transform": window_transform(region.window, spec.transform),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": block_rows,
        **({"compress": "deflate"} if kept else {"compress": "zstd", "zstd_level": 1}),
        "predictor": 3,
        "BIGTIFF": "IF_SAFER",
    }


class _TileRunner:
    """Runs batches of tiles through the model and blends them in grid order."""

    def __init__(
        self,
        model: Segmenter,
        texts: list[TextFeatures],
        device: torch.device,
        grid: TileGrid,
        out: rasterio.io.DatasetWriter,
        times: StageTimes,
    ) -> None:
        self.model, self.texts, self.device, self.grid, self.out = model, texts, device, grid, out
        self.blender = RowBandBlender(grid, len(texts))
        self.done = 0
        self.ran = 0
        self.times = times

    def run(self, pending: list[TileData]) -> None:
        """Model on the tiles with valid pixels, then blend all of them in order."""
        active = [item for item in pending if item[2].any()]
        with self.times.measure("model"):
            logits = _run_batch(self.model, active, self.texts, self.device) if active else None
        k = 0
        with self.times.measure("blend"):
            for tile, _, valid in pending:
                while tile.grid_row > self.blender.grid_row:
                    self.blender.finish_row(self._write)
                    trim_heap()
                if valid.any():
                    self.blender.add(tile, logits[k], valid)  # type: ignore[index]
                    k += 1
                else:
                    self.blender.skip(tile)
        self.done += len(pending)
        self.ran += len(active)

    def flush(self) -> None:
        with self.times.measure("blend"):
            self.blender.finish_row(self._write)
            trim_heap()

    def _write(self, window: Window, probabilities: np.ndarray) -> None:
        self.out.write(probabilities, window=window)

    def finish(self) -> None:
        while self.blender.grid_row < self.grid.shape[0]:
            self.flush()


def _infer_probabilities(
    model: Segmenter,
    spec: RasterSpec,
    region: Region,
    grid: TileGrid,
    texts: list[TextFeatures],
    probabilities_path: Path,
    device: torch.device,
    options: SegmentOptions,
    progress: Progress | None,
    cancel: threading.Event | None,
    times: StageTimes,
) -> int:
    """Tiles → blended probabilities written band by band; returns how many tiles ran.

    Tiles with no valid pixel (nodata, fill, outside the AOI) skip the model.
    """
    kept = options.probabilities_path is not None
    profile = _probability_profile(spec, region, len(texts), grid.stride, kept)
    with (
        rasterio.open(probabilities_path, "w", **profile) as out,
        prefetched_tiles(spec, grid, region, depth=2 * options.batch_size, times=times) as tiles,
    ):
        runner = _TileRunner(model, texts, device, grid, out, times)
        pending: list[TileData] = []
        active = 0
        for item in tiles:
            pending.append(item)
            active += bool(item[2].any())
            # A full batch for the model, or a run of empty tiles (nodata, fill, outside the
            # AOI) long enough to blend: either way memory stays bounded on a mostly empty
            # raster, and progress and cancel advance over its empty parts too.
            if active < options.batch_size and len(pending) < EMPTY_RUN_TILES:
                continue
            runner.run(pending)
            pending, active = [], 0
            _report(progress, cancel, runner.done, len(grid))
        if pending:
            runner.run(pending)
            _report(progress, cancel, runner.done, len(grid))
        runner.finish()
    return runner.ran


def _report(
    progress: Progress | None, cancel: threading.Event | None, done: int, total: int
) -> None:
    if progress is not None:
        progress(done, total, f"segmented {done} of {total} tiles")
    if cancel is not None and cancel.is_set():
        raise Cancelled("segmentation cancelled")


@dataclass(frozen=True)
class ReadyModel:
    """A model on its device with every prompt encoded once, for any number of runs."""

    model: Segmenter
    device: torch.device
    device_reason: str
    texts: list[TextFeatures]
    model_prompts: tuple[str, ...]
    warnings: tuple[str, ...]  # about the prompts (interpretation, token limit)


def ready_model(model: Segmenter, plan: SegmentPlan) -> ReadyModel:
    """Check the plan's tiles against the network's stride, move the model to the plan's
    device and encode its prompts (as the card reads them unless the plan is literal)."""
    stride = int(model.config.stride)
    if plan.grid.size % stride:
        raise OptionError(
            f"tile size {plan.grid.size} is not a multiple of the model stride {stride}"
        )
    device, reason = choose_device(plan.options.device)
    if isinstance(model, torch.nn.Module):
        model.to(device).eval()
    log.info("device: %s (%s)", device, reason)
    card = None if plan.options.literal else plan.model.card
    readings = interpret_prompts(list(plan.prompts), card)
    model_prompts = [r.text for r in readings]
    warnings = [r.warning for r in readings if r.warning]
    warnings += token_warnings(model, model_prompts)
    texts = [model.encode_text([text]).to(device) for text in model_prompts]  # once per prompt
    return ReadyModel(model, device, reason, texts, tuple(model_prompts), tuple(warnings))


def write_probabilities(
    plan: SegmentPlan,
    ready: ReadyModel,
    path: Path,
    progress: Progress | None,
    cancel: threading.Event | None,
    times: StageTimes,
) -> int:
    """The plan's region → a probability GeoTIFF at `path` (one band per prompt); returns
    how many tiles ran the model."""
    keep_heap()  # activations reused in place, not faulted in again every tile
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        return _infer_probabilities(
            ready.model, plan.spec, plan.region, plan.grid, ready.texts, path, ready.device,
            plan.options, progress, cancel, times,
        )  # fmt: skip


def temporary_probabilities(output: Path) -> Path:
    """A hidden, unique probability GeoTIFF name beside the output (same filesystem)."""
    handle, name = tempfile.mkstemp(
        prefix=f".{output.stem}.", suffix=".probabilities.tif", dir=output.parent
    )
    os.close(handle)
    return Path(name)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def crs_label(crs_wkt: str) -> str:
    """ "EPSG:32633" where the CRS has a code, else its WKT."""
    return rasterio.crs.CRS.from_wkt(crs_wkt).to_string()


def segment_raster(
    raster_path: str | os.PathLike[str],
    prompts: Sequence[str],
    output_path: str | os.PathLike[str],
    *,
    model: Segmenter,
    options: SegmentOptions | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> SegmentResult:
    """Segment `prompts` on a raster and write their polygons to a GeoPackage."""
    plan = plan_segment(raster_path, prompts, options or SegmentOptions(), ModelFacts.of(model))
    return run_plan(plan, output_path, model=model, progress=progress, cancel=cancel)


def run_plan(
    plan: SegmentPlan,
    output_path: str | os.PathLike[str],
    *,
    model: Segmenter,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> SegmentResult:
    """Run a checked plan (see plan.py) with `model`, the one it was planned for; its inputs
    are not checked again, only that its tiles suit the network's stride. Every prompt's
    polygons go to the one layer "saymap"."""
    started = time.perf_counter() - plan.seconds
    options, spec, region, grid = plan.options, plan.spec, plan.region, plan.grid
    prompts, resolution = list(plan.prompts), plan.resolution
    output = check_output_path(output_path, options.overwrite)
    ready = ready_model(model, plan)
    warnings = [w for w in (resolution.warning, *ready.warnings) if w]
    run_id = uuid.uuid4().hex
    times = StageTimes()
    common = {
        "model": plan.model.name,  # the registered name, not the configuration ("mobile")
        "run_id": run_id,
        "created_at": now_iso(),
        "source": os.path.abspath(plan.raster_path),
    }
    keep = options.probabilities_path is not None
    probabilities_path = (
        Path(options.probabilities_path)  # type: ignore[arg-type]
        if keep
        else temporary_probabilities(output)
    )
    crs_wkt = spec.crs.to_wkt()
    try:
        ran = write_probabilities(plan, ready, probabilities_path, progress, cancel, times)
        if progress is not None:
            progress(len(grid), len(grid), "vectorising")
        with (
            rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
            times.measure("vectorise"),
            GeoPackageWriter(output, crs_wkt, options.overwrite) as writer,
        ):
            counts = vectorize_to_geopackage(
                probabilities_path, writer, prompts, crs_wkt, options.vectorize_options(),
                common, cancel,
            )  # fmt: skip
            total = writer.commit()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(probabilities_path)
        raise
    if not keep:
        os.remove(probabilities_path)
    window = region.window
    return SegmentResult(
        output_path=str(output),
        run_id=run_id,
        model_name=common["model"],
        prompts=tuple(prompts),
        n_features=total,
        features_per_prompt=counts,
        tiles=len(grid),
        tiles_run=ran,
        tile_size=grid.size,
        overlap=options.overlap,
        device=str(ready.device),
        device_reason=ready.device_reason,
        seconds=time.perf_counter() - started,
        window=(int(window.col_off), int(window.row_off), int(window.width), int(window.height)),
        probabilities_path=str(probabilities_path) if keep else None,
        warnings=tuple(warnings),
        stage_seconds=times.as_dict(),
        native_gsd_m=resolution.native_m,
        working_gsd_m=resolution.working_m,
        resolution_note=resolution.note,
        model_prompts=ready.model_prompts,
        layers=dict.fromkeys(prompts, LAYER),
        rasters=(os.path.abspath(plan.raster_path),),
        out_crs=crs_label(crs_wkt),
    )
