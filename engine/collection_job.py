"""A collection of rasters as one resumable job, on one process or many (`torchrun`).

`plan_collection` checks everything before any model runs, as `plan_segment` does for one
raster: it expands the inputs, lays them out in groups and units (engine/collection.py) and
plans each group's mosaic on its working grid. `run_collection` runs the units this rank
owns (index % world == rank), each with the one-raster pipeline (infer.py) on its group's
mosaic over its owned area grown by the tile overlap, so the model sees across every cut.
Rank 0 then merges: per group a VRT over the units' probabilities, each cropped to the
unit's owned window on the group's working grid (so crops tile exactly), is vectorised
once, so an object across a raster or block edge is one polygon; groups in another CRS are
reprojected to the output CRS; all of it goes into one GeoPackage, atomically.

The job's state lives beside the output in `<output>.saymap-job/`: `manifest.json` (what
the job is) and, per finished unit, `units/unit_00003.tif` and `done/unit_00003.json`, each
written under a temporary name and renamed. A re-run of the same job skips the done units.
Only what changes the probabilities is in the manifest (inputs, prompts, model, tile,
bands, resolution, AOI): threshold and clean-up apply at the merge and may change between
runs. One process, one raster is simply a collection of one: a job of one unit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import shapely
from pyproj import CRS as ProjCRS
from pyproj.exceptions import CRSError as ProjCRSError
from rasterio.windows import Window
from shapely.geometry import box

from saymap.engine.aoi import AOI, resolve_region, to_raster_crs
from saymap.engine.collection import Group, Layout, Unit, expand_rasters, lay_out
from saymap.engine.distributed import DistInfo, barrier, rank_device
from saymap.engine.errors import AOIError, CRSError, OptionError, OutputError
from saymap.engine.output import GeoPackageWriter, check_output_path, layer_names
from saymap.engine.plan import ModelFacts, SegmentOptions, SegmentPlan, plan_segment
from saymap.engine.prompt import check_prompts
from saymap.engine.raster import RasterSpec
from saymap.engine.tiling import TileGrid
from saymap.engine.timing import StageTimes
from saymap.engine.vectorize import Destination, vectorize_to_geopackage

if TYPE_CHECKING:  # the pipeline imports torch: only `run_collection` loads it
    from saymap.engine.infer import Progress, Segmenter, SegmentResult

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
WORK_SUFFIX = ".saymap-job"
DEFAULT_BLOCK_PX = 16384
GDAL_CACHE_BYTES = 16 * 1024 * 1024  # as the pipeline's (infer.py)
UnitProgress = Callable[[Unit, int, int], None]  # (unit, done tiles, its tiles)
Window4 = tuple[int, int, int, int]  # col_off, row_off, width, height


@dataclass(frozen=True)
class GroupPlan:
    """One group's mosaic planned on its working grid (no AOI: units bring their own)."""

    group: Group
    plan: SegmentPlan

    @property
    def crs_wkt(self) -> str:
        return self.plan.spec.crs.to_wkt()


@dataclass(frozen=True)
class UnitPlan:
    """A unit's run: its region on the group's grid (owned area grown by the overlap) and
    the window it keeps; `plan` is None when the unit's area is outside the AOI."""

    unit: Unit
    plan: SegmentPlan | None
    crop: Window4  # on the group's working grid; (0, 0, 0, 0) when there is nothing

    @property
    def tiles(self) -> int:
        return len(self.plan.grid) if self.plan is not None else 0


@dataclass(frozen=True)
class CollectionPlan:
    """A checked collection job: what `run_collection` needs, nothing checked again."""

    rasters: tuple[str, ...]
    prompts: tuple[str, ...]
    options: SegmentOptions
    model: ModelFacts
    output_path: str
    out_crs_wkt: str
    layout: Layout
    groups: tuple[GroupPlan, ...]
    units: tuple[UnitPlan, ...]
    layers: dict[str, str]  # prompt → GeoPackage layer
    manifest: dict[str, Any]
    layout_dir: str  # the groups' mosaics (temporary, removed with the plan)
    seconds: float
    # Removes layout_dir once no copy of the plan (dataclasses.replace shares it) is left.
    owner: object = field(default=None, repr=False, compare=False)

    @property
    def work_dir(self) -> Path:
        return work_dir_for(self.output_path)

    @property
    def tiles(self) -> int:
        return sum(u.tiles for u in self.units)

    @property
    def native_pixels(self) -> int:
        """Pixels of the inputs' working grids, summed: an upper bound on what the job's
        probabilities hold per prompt."""
        return sum(p.plan.native_pixels for p in self.groups)


def work_dir_for(output_path: str | os.PathLike[str]) -> Path:
    """The job's folder beside its output: `<output>.saymap-job`."""
    output = Path(output_path)
    return output.with_name(output.name + WORK_SUFFIX)


def _out_crs(value: str | None, first: GroupPlan) -> str:
    if value is None or not str(value).strip():
        return first.crs_wkt
    try:
        return ProjCRS.from_user_input(value).to_wkt()
    except ProjCRSError as exc:
        raise CRSError(f"--out-crs {value!r} is not a CRS: {exc}") from exc


def _pixel_window(plan: SegmentPlan, bounds: tuple[float, float, float, float]) -> Window4:
    """Map bounds → the window of the group's working grid, edges rounded to the nearest
    pixel edge (two units sharing an edge round it alike, so their windows tile) and
    clipped to the grid."""
    spec = plan.spec
    inverse = ~spec.transform
    minx, miny, maxx, maxy = bounds
    cols, rows = zip(*(inverse @ (x, y) for x in (minx, maxx) for y in (miny, maxy)), strict=True)
    col0 = min(max(round(min(cols)), 0), spec.width)
    col1 = min(max(round(max(cols)), 0), spec.width)
    row0 = min(max(round(min(rows)), 0), spec.height)
    row1 = min(max(round(max(rows)), 0), spec.height)
    return col0, row0, col1 - col0, row1 - row0


def _intersect(a: Window4, b: Window, /) -> Window4:
    col0, row0 = max(a[0], int(b.col_off)), max(a[1], int(b.row_off))
    col1 = min(a[0] + a[2], int(b.col_off + b.width))
    row1 = min(a[1] + a[3], int(b.row_off + b.height))
    return (col0, row0, col1 - col0, row1 - row0) if col1 > col0 and row1 > row0 else (0, 0, 0, 0)


def _plan_unit(unit: Unit, group: GroupPlan, aoi: Any) -> UnitPlan:
    """The unit's owned bounds grown by the overlap (working pixels), cut by the user's
    AOI (already in the group's CRS), placed on the group's grid."""
    plan = group.plan
    spec, options = plan.spec, plan.options
    pixel = math.hypot(spec.transform.a, spec.transform.d)
    grown = box(*unit.bounds).buffer(options.overlap * pixel, join_style="mitre")
    area = grown if aoi is None else grown.intersection(aoi)
    if area.is_empty or area.area <= 0:
        return UnitPlan(unit, None, (0, 0, 0, 0))
    try:
        region = resolve_region(spec, AOI(area, None, f"unit {unit.index}"))
    except AOIError:
        return UnitPlan(unit, None, (0, 0, 0, 0))
    crop = _intersect(_pixel_window(plan, unit.bounds), region.window)
    if crop[2] == 0:
        return UnitPlan(unit, None, crop)
    grid = TileGrid.over(region.window, plan.grid.size, options.overlap)
    return UnitPlan(unit, dataclasses.replace(plan, region=region, grid=grid), crop)


def _file_identity(path: str) -> list[Any]:
    stat = os.stat(path)
    return [path, stat.st_size, stat.st_mtime_ns]


def _manifest(
    rasters: Sequence[str],
    prompts: Sequence[str],
    options: SegmentOptions,
    model: ModelFacts,
    layout: Layout,
    block_px: int,
) -> dict[str, Any]:
    card = json.dumps(model.card or {}, sort_keys=True, default=str)
    aoi = options.aoi
    return json.loads(  # as it reads back from the file, for comparison
        json.dumps(
            {
                "version": MANIFEST_VERSION,
                "rasters": [_file_identity(r) for r in rasters],
                "prompts": list(prompts),
                "model": {"name": model.name, "card": hashlib.sha256(card.encode()).hexdigest()},
                "options": {
                    "tile": options.tile,
                    "overlap": options.overlap,
                    "bands": list(options.bands) if options.bands else None,
                    "assume_crs": options.assume_crs,
                    "gsd": str(options.gsd) if options.gsd is not None else None,
                    "literal": options.literal,
                    "aoi": [aoi.geometry.wkt, aoi.crs] if aoi is not None else None,
                },
                "block_px": block_px,
                "units": [[u.index, u.group, u.raster, list(u.bounds)] for u in layout.units],
            }
        )
    )


def _read_manifest(work: Path) -> dict[str, Any] | None:
    try:
        return json.loads((work / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # unreadable: another job as far as resuming goes


def _check_resumable(work: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    if overwrite or not work.exists():
        return
    found = _read_manifest(work)
    if found != manifest:
        raise OutputError(
            f"{work} holds another job (other inputs, prompts, model or options); remove that "
            "folder, or pass --overwrite to start this one again"
        )


def plan_collection(
    inputs: Sequence[str | os.PathLike[str]],
    prompts: Sequence[str],
    options: SegmentOptions,
    model: ModelFacts,
    output_path: str | os.PathLike[str],
    *,
    out_crs: str | None = None,
    block_px: int = DEFAULT_BLOCK_PX,
) -> CollectionPlan:
    """Check a collection job before any model runs (options, prompts, output, every raster,
    CRSs, the AOI, tiles, an earlier run's folder); raises the SaymapError naming the
    first thing to fix. `out_crs` defaults to the first raster's CRS."""
    started = time.perf_counter()
    options.check()
    checked = tuple(check_prompts(prompts))
    check_output_path(output_path, options.overwrite)
    rasters = expand_rasters(inputs)
    layout_dir = tempfile.mkdtemp(prefix="saymap-layout-")
    try:
        layout = lay_out(
            rasters, layout_dir, bands=options.bands, assume_crs=options.assume_crs,
            block_px=block_px,
        )  # fmt: skip
        whole = dataclasses.replace(options, aoi=None, probabilities_path=None)
        groups = tuple(
            GroupPlan(g, plan_segment(g.mosaic, checked, whole, model, native=_opened(g)))
            for g in layout.groups
        )
        if options.probabilities_path is not None and len(groups) > 1:
            raise OptionError(
                f"--keep-probabilities needs rasters that form one mosaic (one CRS, touching); "
                f"these form {len(groups)} groups"
            )
        crs_wkt = _out_crs(out_crs, groups[layout.units[0].group])  # the first raster's
        units = tuple(_plan_units(layout, groups, options.aoi))
        manifest = _manifest(rasters, checked, options, model, layout, block_px)
        _check_resumable(work_dir_for(output_path), manifest, options.overwrite)
    except BaseException:
        shutil.rmtree(layout_dir, ignore_errors=True)
        raise
    return CollectionPlan(
        rasters=tuple(rasters),
        prompts=checked,
        options=options,
        model=model,
        output_path=os.fspath(output_path),
        out_crs_wkt=crs_wkt,
        layout=layout,
        groups=groups,
        units=units,
        layers=layer_names(checked),
        manifest=manifest,
        layout_dir=layout_dir,
        seconds=time.perf_counter() - started,
        owner=_TemporaryFolder(layout_dir),
    )


class _TemporaryFolder:
    """A temporary folder, removed once nothing holds this (every copy of the plan)."""

    def __init__(self, folder: str) -> None:
        weakref.finalize(self, shutil.rmtree, folder, True)


def _opened(group: Group) -> RasterSpec | None:
    """The lone raster's spec as the layout opened it, where the layout keeps it (the
    1024 px scaling sample of a 16-bit raster is then read once, not twice)."""
    spec = group.spec
    return spec if spec is not None and os.path.abspath(spec.path) == group.mosaic else None


def _plan_units(layout: Layout, groups: Sequence[GroupPlan], aoi: AOI | None) -> list[UnitPlan]:
    """Every unit placed on its group's grid; AOIError when the AOI misses every raster."""
    in_group = [to_raster_crs(aoi, g.plan.spec) if aoi is not None else None for g in groups]
    units = [_plan_unit(u, groups[u.group], in_group[u.group]) for u in layout.units]
    if aoi is not None and all(u.plan is None for u in units):
        raise AOIError(f"{aoi.label} does not overlap any of the {len(layout.units)} raster(s)")
    return units


def _atomic_json(path: Path, value: Any) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temp.write_text(json.dumps(value, indent=1), encoding="utf-8")
    os.replace(temp, path)


def _unit_name(index: int) -> str:
    return f"unit_{index:05d}"


def _prepare_work(plan: CollectionPlan) -> None:
    """Rank 0: the job folder with this job's manifest; an older job's folder is cleared
    first (with --overwrite, as planning allowed)."""
    work = plan.work_dir
    if work.exists() and _read_manifest(work) != plan.manifest:
        if not plan.options.overwrite:  # it changed since planning
            _check_resumable(work, plan.manifest, False)
        shutil.rmtree(work)
    (work / "units").mkdir(parents=True, exist_ok=True)
    (work / "done").mkdir(exist_ok=True)
    if _read_manifest(work) != plan.manifest:
        _atomic_json(work / MANIFEST, plan.manifest)


def _done_markers(work: Path) -> dict[int, dict[str, Any]]:
    done: dict[int, dict[str, Any]] = {}
    for path in sorted((work / "done").glob("unit_*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            marker = json.loads(path.read_text(encoding="utf-8"))
            done[int(marker["index"])] = marker
    return done


def _run_unit(
    unit: UnitPlan,
    ready: Any,
    work: Path,
    progress: Progress | None,
    cancel: threading.Event | None,
    times: StageTimes,
) -> dict[str, Any]:
    """One unit's probabilities to units/, then its done marker (both renamed into place)."""
    from saymap.engine.infer import write_probabilities

    name = _unit_name(unit.unit.index)
    marker: dict[str, Any] = {"index": unit.unit.index, "tiles": unit.tiles, "tiles_run": 0}
    if unit.plan is not None:
        target = work / "units" / f"{name}.tif"
        temp = target.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp.tif")
        try:
            marker["tiles_run"] = write_probabilities(
                unit.plan, ready, temp, progress, cancel, times
            )
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)
        window = unit.plan.region.window
        marker["file"] = f"units/{name}.tif"
        marker["region"] = [int(window.col_off), int(window.row_off)]
        marker["crop"] = list(unit.crop)
    _atomic_json(work / "done" / f"{name}.json", marker)
    return marker


def _source_of(units: Sequence[Unit]) -> Callable[[np.ndarray], list[str]]:
    """Polygons (group CRS) → the raster of the unit whose owned area holds each one's
    representative point (the earliest unit where owned areas overlap; else the nearest)."""
    boxes = np.array([box(*u.bounds) for u in units], dtype=object)
    tree = shapely.STRtree(boxes)

    def source_of(geometries: np.ndarray) -> list[str]:
        points = shapely.point_on_surface(np.asarray(geometries, dtype=object))
        found: list[str] = []
        for point in points:
            hits = tree.query(point, predicate="intersects")
            index = int(hits.min()) if len(hits) else int(tree.nearest(point))
            found.append(units[index].raster)
        return found

    return source_of


def _group_vrt(
    path: Path, group: GroupPlan, units: Sequence[tuple[UnitPlan, dict[str, Any]]], bands: int
) -> Window4 | None:
    """A float32 VRT over the units' crops on the group's working grid, the earliest unit
    drawn last (it wins where owned areas overlap); None when no unit has pixels."""
    kept = [(u, m) for u, m in units if m.get("file")]
    if not kept:
        return None
    col0 = min(m["crop"][0] for _, m in kept)
    row0 = min(m["crop"][1] for _, m in kept)
    col1 = max(m["crop"][0] + m["crop"][2] for _, m in kept)
    row1 = max(m["crop"][1] + m["crop"][3] for _, m in kept)
    t = group.plan.spec.transform @ rasterio.Affine.translation(col0, row0)
    geotransform = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    lines = [
        f'<VRTDataset rasterXSize="{col1 - col0}" rasterYSize="{row1 - row0}">',
        f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(group.crs_wkt)}</SRS>',
        f"  <GeoTransform>{geotransform}</GeoTransform>",
    ]
    for band in range(1, bands + 1):
        lines.append(f'  <VRTRasterBand dataType="Float32" band="{band}">')
        for _, marker in sorted(kept, key=lambda um: -um[0].unit.index):
            c, r, w, h = marker["crop"]
            sc, sr = c - marker["region"][0], r - marker["region"][1]
            lines += [
                "    <SimpleSource>",
                f'      <SourceFilename relativeToVRT="1">{escape(marker["file"])}'
                "</SourceFilename>",
                f"      <SourceBand>{band}</SourceBand>",
                f'      <SrcRect xOff="{sc}" yOff="{sr}" xSize="{w}" ySize="{h}"/>',
                f'      <DstRect xOff="{c - col0}" yOff="{r - row0}" xSize="{w}" ySize="{h}"/>',
                "    </SimpleSource>",
            ]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return col0, row0, col1 - col0, row1 - row0


def _copy_probabilities(vrt: Path, target: Path) -> None:
    """The merged probabilities of a one-group job as a GeoTIFF the user keeps (DEFLATE,
    which every GDAL reads), copied window by window."""
    with rasterio.open(vrt) as src:
        profile = {
            "driver": "GTiff", "dtype": "float32", "count": src.count, "width": src.width,
            "height": src.height, "crs": src.crs, "transform": src.transform, "tiled": True,
            "blockxsize": 512, "blockysize": 512, "compress": "deflate", "predictor": 3,
            "BIGTIFF": "IF_SAFER",
        }  # fmt: skip
        with rasterio.open(target, "w", **profile) as dst:
            for row in range(0, src.height, 2048):
                window = Window(0, row, src.width, min(2048, src.height - row))
                dst.write(src.read(window=window), window=window)


def run_collection(
    plan: CollectionPlan,
    output_path: str | os.PathLike[str],
    *,
    model: Segmenter,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    dist: DistInfo | None = None,
    unit_progress: UnitProgress | None = None,
) -> SegmentResult:
    """Run this rank's share of a planned job, then (rank 0) merge every unit into the
    GeoPackage and remove the job folder. Cancelling or failing keeps the done units for
    a re-run (a one-process job with no unit done leaves nothing). Other ranks return
    once their share is done, with their own tiles and no features."""
    from saymap.engine.infer import ready_model

    info = dist or DistInfo()
    started = time.perf_counter() - plan.seconds
    output = Path(output_path)
    work = plan.work_dir
    times = StageTimes()
    try:
        if info.is_main:
            _prepare_work(plan)
        barrier(info)
        if _read_manifest(work) != plan.manifest:
            raise OutputError(f"{work} no longer holds this job's manifest; start again")
        done = _done_markers(work)
        resumed = sum(1 for u in plan.units if u.unit.index in done)
        mine = [u for u in plan.units if u.unit.index % info.world == info.rank]
        first = plan.groups[0].plan
        device = rank_device(plan.options.device, info)  # cuda:LOCAL_RANK under torchrun
        ready = ready_model(
            model,
            dataclasses.replace(first, options=dataclasses.replace(first.options, device=device)),
        )
        total = sum(u.tiles for u in mine)
        base = sum(u.tiles for u in mine if u.unit.index in done)
        for unit in mine:
            if unit.unit.index in done:
                continue
            report = _unit_reporter(plan, unit, base, total, progress, unit_progress)
            done[unit.unit.index] = _run_unit(unit, ready, work, report, cancel, times)
            base += unit.tiles
        barrier(info)
        if not info.is_main:
            return _result(plan, output, ready, done, resumed, 0, {}, mine, times, started)
        if progress is not None:
            progress(total, total, "vectorising")
        counts, features, run_id = _merge(plan, output, work, cancel, times)
    except BaseException:
        if info.world == 1 and work.is_dir() and not _done_markers(work):
            shutil.rmtree(work, ignore_errors=True)  # nothing done: nothing to resume
        raise
    shutil.rmtree(work, ignore_errors=True)
    result = _result(
        plan, output, ready, done, resumed, features, counts, plan.units, times, started
    )
    return dataclasses.replace(result, run_id=run_id)


def _unit_reporter(
    plan: CollectionPlan,
    unit: UnitPlan,
    base: int,
    total: int,
    progress: Progress | None,
    unit_progress: UnitProgress | None,
) -> Progress | None:
    """The pipeline's per-tile progress as the job's: overall tiles, and which raster."""
    if progress is None and unit_progress is None:
        return None
    position = plan.rasters.index(unit.unit.raster) + 1 if unit.unit.raster in plan.rasters else 0
    what = f"raster {position} of {len(plan.rasters)} ({unit.unit.label})"

    def report(done: int, tiles: int, message: str) -> None:
        if unit_progress is not None:
            unit_progress(unit.unit, done, tiles)
        if progress is not None:
            progress(base + done, total, f"{what}: {done} of {tiles} tiles")

    return report


def _merge(
    plan: CollectionPlan,
    output: Path,
    work: Path,
    cancel: threading.Event | None,
    times: StageTimes,
) -> tuple[dict[str, int], int, str]:
    """Rank 0, every unit done: one vectorisation per group into one GeoPackage."""
    from saymap.engine.infer import now_iso

    done = _done_markers(work)
    missing = [u.unit.index for u in plan.units if u.unit.index not in done]
    if missing:
        raise OutputError(
            f"{len(missing)} unit(s) of the job in {work} are not done (first: unit "
            f"{missing[0]}); run the same command again to finish them"
        )
    options = plan.options
    common = {"model": plan.model.name, "run_id": uuid.uuid4().hex, "created_at": now_iso()}
    counts = dict.fromkeys(plan.prompts, 0)
    keep = options.probabilities_path
    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
        times.measure("vectorise"),
        GeoPackageWriter(
            output, plan.out_crs_wkt, options.overwrite, layers=list(plan.layers.values())
        ) as writer,
    ):
        for group in plan.groups:
            members = [
                (u, done[u.unit.index]) for u in plan.units if u.unit.group == group.group.index
            ]
            vrt = work / f"group_{group.group.index:04d}.vrt"
            if _group_vrt(vrt, group, members, len(plan.prompts)) is None:
                continue
            if keep is not None:
                _copy_probabilities(vrt, Path(keep))
            same = ProjCRS.from_wkt(group.crs_wkt) == ProjCRS.from_wkt(plan.out_crs_wkt)
            destination = Destination(
                layers=plan.layers,
                source_of=_source_of([u.unit for u, _ in members]),
                out_crs_wkt=None if same else plan.out_crs_wkt,
            )
            found = vectorize_to_geopackage(
                vrt, writer, plan.prompts, group.crs_wkt, options.vectorize_options(),
                {**common, "source": ""}, cancel, destination,
            )  # fmt: skip
            for prompt, n in found.items():
                counts[prompt] += n
        features = writer.commit()
    return counts, features, common["run_id"]


def _result(
    plan: CollectionPlan,
    output: Path,
    ready: Any,
    done: dict[int, dict[str, Any]],
    resumed: int,
    features: int,
    counts: dict[str, int],
    units: Sequence[UnitPlan],
    times: StageTimes,
    started: float,
) -> SegmentResult:
    from saymap.engine.infer import SegmentResult, crs_label

    first = plan.groups[0].plan
    resolution = first.resolution
    crops = [u.crop for u in plan.units if u.crop[2]]
    if crops:
        col0, row0 = min(c[0] for c in crops), min(c[1] for c in crops)
        window = (
            col0, row0, max(c[0] + c[2] for c in crops) - col0,
            max(c[1] + c[3] for c in crops) - row0,
        )  # fmt: skip
    else:
        window = (0, 0, 0, 0)
    warnings = [g.plan.resolution.warning for g in plan.groups if g.plan.resolution.warning]
    return SegmentResult(
        output_path=str(output),
        run_id="",
        model_name=plan.model.name,
        prompts=plan.prompts,
        n_features=features,
        features_per_prompt=counts,
        tiles=sum(u.tiles for u in units),
        tiles_run=sum(int(done.get(u.unit.index, {}).get("tiles_run", 0)) for u in units),
        tile_size=first.grid.size,
        overlap=plan.options.overlap,
        device=str(ready.device),
        device_reason=ready.device_reason,
        seconds=time.perf_counter() - started,
        window=window,
        probabilities_path=plan.options.probabilities_path,
        warnings=tuple(dict.fromkeys([*warnings, *ready.warnings])),
        stage_seconds=times.as_dict(),
        native_gsd_m=resolution.native_m,
        working_gsd_m=resolution.working_m,
        resolution_note=resolution.note,
        model_prompts=ready.model_prompts,
        layers=dict(plan.layers),
        rasters=plan.rasters,
        units=len(plan.units),
        units_resumed=resumed,
        out_crs=crs_label(plan.out_crs_wkt),
    )
