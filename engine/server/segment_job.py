"""The segment job: a checked request → `segment_raster` on the warm model, with progress."""

from __future__ import annotations

import glob
import logging
import threading
from pathlib import Path
from typing import Any

from saymap.engine import registry
from saymap.engine.server.jobs import JobContext
from saymap.engine.server.models_cache import ModelCache
from saymap.engine.server.schemas import SegmentRequest

log = logging.getLogger(__name__)


def partial_patterns(output: str) -> list[str]:
    """What a killed segment job may leave: the GeoPackage writer's hidden temp file (with
    SQLite's sidecars) beside the output, and the output itself once renamed into place."""
    target = Path(output)
    folder = glob.escape(str(target.parent))
    stem = glob.escape(target.stem)
    name = glob.escape(target.name)
    return [
        f"{folder}/.{stem}.*.tmp.gpkg",
        f"{folder}/.{stem}.*.tmp.gpkg-*",
        f"{folder}/{name}",
        f"{folder}/{name}-*",
    ]


def _options(request: SegmentRequest, device: Any) -> Any:
    from saymap.engine.infer import SegmentOptions

    aoi = None
    if request.aoi is not None:
        from saymap.engine.server.validation import build_aoi

        aoi = build_aoi(request.aoi)
    values: dict[str, Any] = {
        "threshold": request.threshold,
        "bands": request.bands,
        "aoi": aoi,
        "assume_crs": request.assume_crs,
        "overwrite": request.overwrite,
        "device": device,
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
        options=_options(request, device),
        progress=progress,
        cancel=context.cancel,
    )
    return {
        "output": str(request.output),
        "n_features": int(result.n_features),
        "model": request.model,
        "device": str(device),
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
