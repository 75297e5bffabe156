"""The segment job: a checked request → `segment_raster` on the warm model, with progress."""

from __future__ import annotations

import glob
import logging
import threading
from pathlib import Path
from typing import Any

from saymap.engine import registry
from saymap.engine.infer import SegmentOptions
from saymap.engine.server.jobs import JobContext
from saymap.engine.server.models_cache import ModelCache
from saymap.engine.server.schemas import SegmentRequest
from saymap.engine.server.validation import build_aoi

log = logging.getLogger(__name__)


def partial_patterns(output: str) -> list[str]:
    """What a killed segment job may leave: `segment_raster`'s hidden temp files beside the
    output (`.<stem>.*.tmp.gpkg`, `.<stem>.*.probabilities.tif`, with SQLite's sidecars),
    and the output itself once renamed into place."""
    target = Path(output)
    folder = glob.escape(str(target.parent))
    stem = glob.escape(target.stem)
    name = glob.escape(target.name)
    return [
        f"{folder}/.{stem}.*.tmp.gpkg*",
        f"{folder}/.{stem}.*.probabilities.tif*",
        f"{folder}/{name}",
        f"{folder}/{name}-*",
    ]


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
    context.set_cleanup(partial_patterns(request.output))

    def progress(done: int, total: int, message: str) -> None:
        context.progress(done / total if total else 0.0, message)

    result = segment_raster(
        request.raster,
        request.prompts,
        request.output,
        model=model,
        options=segment_options(request),
        progress=progress,
        cancel=context.cancel,
    )
    return {
        "output": result.output_path,
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
