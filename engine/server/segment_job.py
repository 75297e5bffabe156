"""The segment job: a checked request → `segment_raster` on the warm model, with progress."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from saymap.engine import registry
from saymap.engine.errors import SaymapError, disk_full
from saymap.engine.infer import SegmentOptions
from saymap.engine.output import place
from saymap.engine.server.jobs import JobContext
from saymap.engine.server.models_cache import ModelCache
from saymap.engine.server.preflight import build_aoi
from saymap.engine.server.schemas import SegmentRequest

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


def _probabilities_bytes(request: SegmentRequest) -> int | None:
    """The most the run writes beside its output: float32 probabilities, uncompressed."""
    from saymap.engine.raster import open_raster

    try:
        spec = open_raster(request.raster, bands=request.bands, assume_crs=request.assume_crs)
    except (SaymapError, OSError):
        return None
    return spec.width * spec.height * 4 * len(request.prompts)


def segment_options(request: SegmentRequest) -> SegmentOptions:
    """The request's options as `segment_raster` takes them (its defaults where null)."""
    values: dict[str, Any] = {
        "threshold": request.threshold,
        "device": request.device,
        "bands": None if request.bands is None else tuple(request.bands),
        "assume_crs": request.assume_crs,
        "aoi": None if request.aoi is None else build_aoi(request.aoi),
        "overwrite": request.overwrite,
        "gsd": request.gsd,
    }
    for name in ("tile", "overlap", "batch_size"):
        if getattr(request, name) is not None:
            values[name] = getattr(request, name)
    return SegmentOptions(**values)


def run_segment(context: JobContext, *, models: ModelCache) -> dict[str, Any]:
    """Run one checked segment request; raises Cancelled or a SaymapError on refusal."""
    from saymap.engine.device import choose_device
    from saymap.engine.infer import segment_raster

    request = SegmentRequest.model_validate(context.request)
    assert request.model is not None  # validation resolved it before queueing
    device, reason = choose_device(request.device)
    context.progress(0.0, f"loading model {request.model} on {device} ({reason})")
    model = models.get(request.model, registry.resolve(request.model), device)
    context.raise_if_cancelled()
    work = job_folder(request.output, context.job_id)
    context.set_cleanup([str(work)])  # recorded before it exists
    work.mkdir()  # fails if the name exists: the folder is always this job's own
    staged = work / Path(request.output).name

    def progress(done: int, total: int, message: str) -> None:
        context.progress(done / total if total else 0.0, message)

    try:
        result = segment_raster(
            request.raster,
            request.prompts,
            staged,
            model=model,
            options=segment_options(request),
            progress=progress,
            cancel=context.cancel,
        )
        place(staged, Path(request.output), request.overwrite)
    except SaymapError as exc:
        renamed = _outside_names(exc, staged, request.output)
        if renamed is exc:
            raise
        raise renamed from exc
    except OSError as exc:  # GDAL's write errors: a full disk is the user's to fix, no bug
        full = disk_full(exc, request.output, needed_bytes=_probabilities_bytes(request))
        if full is None:
            raise
        raise full from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "output": request.output,
        "n_features": int(result.n_features),
        "model": request.model,
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
    }


def preload_active_model(models: ModelCache) -> threading.Thread:
    """Load the active model in the background so the first job does not wait for it."""
    from saymap.engine.device import choose_device

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
