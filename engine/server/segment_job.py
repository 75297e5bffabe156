"""The segment job: the preflight's plan → `run_plan` (one raster) or `run_collection` (a
collection) on the warm model, with progress."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from saymap.engine import registry
from saymap.engine.collection_job import CollectionPlan, run_collection
from saymap.engine.device import choose_device
from saymap.engine.errors import Cancelled, SaymapError, disk_full
from saymap.engine.infer import Progress, SegmentResult, run_plan
from saymap.engine.output import LAYER, place
from saymap.engine.plan import SegmentPlan
from saymap.engine.server.jobs import JobContext
from saymap.engine.server.models_cache import ModelCache

log = logging.getLogger(__name__)


def job_folder(output: str, job_id: str) -> Path:
    """The job's own hidden folder beside its output, where every file of the run is written
    (same filesystem, so the finished GeoPackage is renamed into place). Its exact name is
    recorded before it is made, so an engine killed mid-job removes it, and only it, at the
    next start: never the output path, which the user may have written since."""
    target = Path(output)
    return target.with_name(f".{target.name}.{job_id}.saymap-job")


def _outside_names(exc: SaymapError, inside: Path, output: str) -> SaymapError:
    """The error with the job folder's file named as the output the user asked for."""
    text = str(exc)
    if str(inside) not in text:
        return exc
    try:
        return type(exc)(text.replace(str(inside), output))
    except TypeError:
        return exc


def _disk_full(exc: OSError, plan: SegmentPlan | CollectionPlan, output: str) -> SaymapError | None:
    """The DiskFullError for `exc` (naming the space the run needs), or None when `exc` is
    not a full disk."""
    # Float32 probabilities, uncompressed: the most the run writes beside its output.
    return disk_full(exc, output, needed_bytes=plan.native_pixels * 4 * len(plan.prompts))


def run_segment(context: JobContext, *, models: ModelCache) -> dict[str, Any]:
    """Run the plan the preflight made for this job; raises Cancelled or a SaymapError."""
    plan = context.prepared
    if not isinstance(plan, SegmentPlan | CollectionPlan):
        raise RuntimeError(f"segment job {context.job_id} was queued without its plan")
    output, model_name = str(context.request["output"]), str(context.request["model"])
    device, reason = choose_device(plan.options.device)
    context.progress(0.0, f"loading model {model_name} on {device} ({reason})")
    model = models.get(model_name, registry.resolve(model_name), device)
    context.raise_if_cancelled()

    def progress(done: int, total: int, message: str) -> None:
        context.progress(done / total if total else 0.0, message)

    if isinstance(plan, CollectionPlan):
        result = _run_collection(context, plan, output, model, progress)
    else:
        result = _run_single(context, plan, output, model, progress)
    return job_result(result, output, model_name, context.request)


def _run_single(
    context: JobContext, plan: SegmentPlan, output: str, model: Any, progress: Progress
) -> SegmentResult:
    """One raster, as before collections: staged in the job's folder, renamed into place."""
    work = job_folder(output, context.job_id)
    context.set_cleanup([str(work)])  # recorded before it exists
    work.mkdir()  # fails if the name exists: the folder is always this job's own
    staged = work / Path(output).name
    try:
        result = run_plan(plan, staged, model=model, progress=progress, cancel=context.cancel)
        place(staged, Path(output), plan.options.overwrite)
    except SaymapError as exc:
        renamed = _outside_names(exc, staged, output)
        if renamed is exc:
            raise
        raise renamed from exc
    except OSError as exc:  # GDAL's write errors: a full disk is the user's to fix, no bug
        full = _disk_full(exc, plan, output)
        if full is None:
            raise
        raise full from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _run_collection(
    context: JobContext, plan: CollectionPlan, output: str, model: Any, progress: Progress
) -> SegmentResult:
    """A collection: the engine's resumable job, which keeps its finished units in its work
    folder beside the output. Nothing is recorded for removal at a restart: a killed engine
    or a cancel leaves that folder so the same request, sent again, resumes."""
    try:
        return run_collection(plan, output, model=model, progress=progress, cancel=context.cancel)
    except Cancelled:
        if plan.work_dir.is_dir():  # it holds finished units (a job with none removes it)
            context.cancel_message = (
                f"cancelled by request; the finished rasters are kept in {plan.work_dir}: "
                "send the same request again to resume"
            )
        raise
    except OSError as exc:  # GDAL's write errors: a full disk is the user's to fix, no bug
        full = _disk_full(exc, plan, output)
        if full is None:
            raise
        raise full from exc


def job_result(
    result: SegmentResult, output: str, model_name: str, request: dict[str, Any]
) -> dict[str, Any]:
    """The finished job's result (JobResult): a single raster's fields as before, and the
    collection's (layers, rasters, units) for either kind."""
    prompts = list(result.prompts)
    rasters = list(result.rasters) or [str(request.get("raster") or "")]
    return {
        "output": output,
        "n_features": int(result.n_features),
        "model": model_name,
        "run_id": result.run_id,
        "features_per_prompt": dict(result.features_per_prompt),
        "tiles": int(result.tiles),
        "tile_size": int(result.tile_size),
        "device": result.device,
        "device_reason": result.device_reason,
        "seconds": round(float(result.seconds), 3),
        "warnings": list(result.warnings),
        "native_gsd_m": result.native_gsd_m,
        "working_gsd_m": result.working_gsd_m,
        "resolution": result.resolution_note,
        "model_prompts": list(result.model_prompts),
        # One layer holds every prompt of a single raster's job; a collection writes one
        # layer per prompt ("saymap" still when there is one prompt).
        "layers": dict(result.layers) or dict.fromkeys(prompts, LAYER),
        "rasters": rasters,
        "units": int(result.units) or 1,
        "units_resumed": int(result.units_resumed),
        "out_crs": result.out_crs or None,
    }


def preload_active_model(models: ModelCache) -> threading.Thread:
    """Load the active model in the background so the first job does not wait for it."""

    def load() -> None:
        name = registry.active_name()
        try:
            device, _ = choose_device("auto")
            models.get(name, registry.resolve(name), device)
        except Exception as exc:  # a warm-up only: the first job reports the real error
            log.warning("could not preload model %s: %s", name, exc)

    thread = threading.Thread(target=load, name="saymap-preload", daemon=True)
    thread.start()
    return thread
