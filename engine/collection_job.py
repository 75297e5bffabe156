"""A collection of rasters as one resumable job, on one process or many (`torchrun`).

`plan_collection` (collection_plan.py) checks everything before any model runs.
`run_collection` runs the units this rank owns (index % world == rank), each with the
one-raster pipeline (infer.py) on its group's mosaic over its owned area grown by the tile
overlap, recording each finished unit in the job folder (job_state.py) so a re-run skips it.
Rank 0 then merges every unit into one GeoPackage (collection_merge.py). One process, one
raster is simply a collection of one: a job of one unit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saymap.engine.collection import Unit
from saymap.engine.collection_merge import merge
from saymap.engine.collection_plan import (
    DEFAULT_BLOCK_PX,
    CollectionPlan,
    GroupPlan,
    UnitPlan,
    plan_collection,
)
from saymap.engine.distributed import DistInfo, barrier, rank_device
from saymap.engine.errors import OutputError
from saymap.engine.job_state import (
    atomic_json,
    done_markers,
    prepare_work,
    read_manifest,
    unit_name,
    work_dir_for,
)
from saymap.engine.timing import StageTimes

if TYPE_CHECKING:  # the pipeline imports torch: only `run_collection` loads it
    from saymap.engine.infer import Progress, Segmenter, SegmentResult

__all__ = [  # planning lives in collection_plan.py; callers import the job from here
    "DEFAULT_BLOCK_PX",
    "CollectionPlan",
    "GroupPlan",
    "UnitPlan",
    "plan_collection",
    "run_collection",
    "work_dir_for",
]

UnitProgress = Callable[[Unit, int, int], None]  # (unit, done tiles, its tiles)


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

    name = unit_name(unit.unit.index)
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
    atomic_json(work / "done" / f"{name}.json", marker)
    return marker


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
            prepare_work(work, plan.manifest, plan.options.overwrite)
        barrier(info)
        if read_manifest(work) != plan.manifest:
            raise OutputError(f"{work} no longer holds this job's manifest; start again")
        done = done_markers(work)
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
        counts, features, run_id = merge(plan, output, work, cancel, times)
    except BaseException:
        if info.world == 1 and work.is_dir() and not done_markers(work):
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
