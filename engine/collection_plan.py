"""A collection job, checked before any model runs as `plan_segment` checks one raster.

`plan_collection` expands the inputs, lays them out in groups and units (engine/collection.py),
plans each group's mosaic on its working grid and places each unit there: its owned area
grown by the tile overlap, so the model sees across every cut, and the window it keeps,
rounded to pixel edges so neighbouring units' windows tile exactly.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyproj import CRS as ProjCRS
from pyproj.exceptions import CRSError as ProjCRSError
from rasterio.windows import Window
from shapely.geometry import box

from saymap.engine.aoi import AOI, resolve_region, to_raster_crs
from saymap.engine.collection import Group, Layout, Unit, expand_rasters, lay_out
from saymap.engine.errors import AOIError, CRSError
from saymap.engine.job_state import check_resumable, job_manifest, work_dir_for
from saymap.engine.output import check_output_path, check_probabilities_paths, layer_names
from saymap.engine.plan import ModelFacts, SegmentOptions, SegmentPlan, plan_segment
from saymap.engine.prompt import check_prompts
from saymap.engine.raster import RasterSpec, open_raster
from saymap.engine.tiling import TileGrid

DEFAULT_BLOCK_PX = 16384
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
    CRSs, each group's kept probabilities, the AOI, tiles, an earlier run's folder); raises
    the SaymapError naming the first thing to fix. `out_crs` defaults to the first raster's CRS."""
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
            GroupPlan(g, plan_segment(g.mosaic, checked, whole, model, native=_opened(g, whole)))
            for g in layout.groups
        )
        if options.probabilities_path is not None:  # one GeoTIFF per group
            others = {**{f"raster {r}": r for r in rasters}, "output": output_path}
            check_probabilities_paths(
                options.probabilities_path, len(groups), options.overwrite, others
            )
        crs_wkt = _out_crs(out_crs, groups[layout.units[0].group])  # the first raster's
        units = tuple(_plan_units(layout, groups, options.aoi))
        manifest = job_manifest(rasters, checked, options, model, layout, block_px)
        check_resumable(work_dir_for(output_path), manifest, options.overwrite)
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


def _opened(group: Group, options: SegmentOptions) -> RasterSpec | None:
    """The lone raster's spec as the layout opened it, where the layout keeps it (the
    1024 px scaling sample of a 16-bit raster is then read once, not twice); a mosaic's VRT
    opened under its members' names, which its messages then give instead of its path."""
    spec = group.spec
    if spec is not None and os.path.abspath(spec.path) == group.mosaic:
        return spec
    if len(group.rasters) < 2:
        return None
    first, last = (os.path.basename(r) for r in (group.rasters[0], group.rasters[-1]))
    label = f"the mosaic of {len(group.rasters)} rasters ({first} … {last})"
    return open_raster(
        group.mosaic, bands=options.bands, assume_crs=options.assume_crs, label=label
    )


def _plan_units(layout: Layout, groups: Sequence[GroupPlan], aoi: AOI | None) -> list[UnitPlan]:
    """Every unit placed on its group's grid; AOIError when the AOI misses every raster."""
    in_group = [to_raster_crs(aoi, g.plan.spec) if aoi is not None else None for g in groups]
    units = [_plan_unit(u, groups[u.group], in_group[u.group]) for u in layout.units]
    if aoi is not None and all(u.plan is None for u in units):
        raise AOIError(f"{aoi.label} does not overlap any of the {len(layout.units)} raster(s)")
    return units
