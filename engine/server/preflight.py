"""Request preflight: checks that need the file system, run before a job is queued so
refusals are 4xx at once. A segment request becomes its plan here (engine/plan.py).

A job that fails an hour later because its output folder was read-only is a poor answer
to a request that could have been refused on the spot.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from fastapi import HTTPException, status

from saymap.engine import paths, registry
from saymap.engine.aoi import AOI, aoi_from_json, resolve_region
from saymap.engine.collection_job import CollectionPlan, plan_collection
from saymap.engine.device import choose_device
from saymap.engine.errors import ModelNotFoundError, SaymapError
from saymap.engine.plan import ModelFacts, SegmentOptions, SegmentPlan, plan_segment
from saymap.engine.raster import open_raster
from saymap.engine.server.schemas import AOI as AOIBody
from saymap.engine.server.schemas import SegmentRequest, TrainPreviewRequest, TrainRequest
from saymap.engine.server.train_job import load_recipe


def bad_request(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail)


def same_path(a: str, b: str) -> bool:
    """Whether two absolute paths name the same file (case-insensitively where the OS is)."""
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _stat(path: str, label: str) -> os.stat_result | None:
    """os.stat that turns every failure into 'absent' or a 400, never a 500."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise bad_request(f"the {label} path {path!r} cannot be used: {exc}") from exc


def check_input_file(path: str, label: str) -> None:
    """An existing regular file (not a folder, device or pipe that would hang a reader)."""
    info = _stat(path, label)
    if info is None:
        raise bad_request(f"the {label} {path} does not exist; give the absolute path of a file")
    if not stat.S_ISREG(info.st_mode):
        raise bad_request(f"the {label} {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise bad_request(f"the {label} {path} is not readable by the engine's user")


def check_output(path: str, overwrite: bool) -> None:
    """The folder exists and is writable; an existing file only with overwrite (else 409)."""
    folder = str(Path(path).parent)
    info = _stat(folder, "output folder")
    if info is None or not stat.S_ISDIR(info.st_mode):
        raise bad_request(f"the output folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise bad_request(f"the output folder {folder} is not writable by the engine's user")
    existing = _stat(path, "output")
    if existing is None:
        return
    if not stat.S_ISREG(existing.st_mode):
        raise bad_request(f"the output {path} exists and is not a file")
    if not overwrite:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the output {path} already exists; choose another name or send overwrite: true",
        )


def resolve_model(name: str | None) -> registry.ModelEntry:
    """The registered model a job will use (the active one when none is named)."""
    chosen = name or registry.active_name()
    try:
        return registry.find(chosen)
    except ModelNotFoundError as exc:
        raise bad_request(str(exc)) from exc
    except SaymapError as exc:
        raise bad_request(f"model {chosen!r} cannot be used: {exc}") from exc


def check_device(requested: str) -> None:
    try:
        choose_device(requested)
    except SaymapError as exc:
        raise bad_request(str(exc)) from exc


def build_aoi(body: AOIBody) -> AOI:
    """The request's AOI as the engine's AOI object (bounds or a WKT polygon, in body.crs)."""
    try:
        return aoi_from_json(body.model_dump(), "AOI")
    except SaymapError as exc:
        raise bad_request(str(exc)) from exc


def segment_options(request: SegmentRequest) -> SegmentOptions:
    """The request's options as the plan takes them (the pipeline's defaults where null)."""
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


def check_outside_data_dir(path: str, label: str) -> None:
    """400 for a path in the engine's own data folder (its job database, token, models)."""
    try:
        paths.check_outside_data_dir(path, label)
    except SaymapError as exc:
        raise bad_request(str(exc)) from exc


def check_segment(request: SegmentRequest) -> tuple[dict[str, Any], SegmentPlan | CollectionPlan]:
    """Everything checkable before queueing: the request to store (model resolved) and the
    plan the job will run, so the job opens the rasters only to read their tiles.

    Every raster of a collection meets the rules a single raster does, each before GDAL
    opens any of them; a plain `raster` request is planned exactly as before."""
    inputs = request.inputs
    label = "raster" if request.raster is not None else "raster in rasters"
    for raster in inputs:
        check_outside_data_dir(raster, label)  # before GDAL opens it: see paths.py
    check_outside_data_dir(request.output, "output")
    for raster in inputs:
        check_input_file(raster, label)
        if same_path(request.output, raster):
            raise bad_request(
                "the output must not be the raster itself"
                if request.raster is not None
                else f"the output must not be one of the rasters ({raster})"
            )
    check_output(request.output, request.overwrite)
    model = resolve_model(request.model)
    check_device(request.device)
    options = segment_options(request)
    plan: SegmentPlan | CollectionPlan
    try:
        facts = ModelFacts.from_config(model.name, model.config, model.card)
        if request.is_collection:
            plan = plan_collection(
                inputs, request.prompts, options, facts, request.output, out_crs=request.out_crs
            )
        else:
            plan = plan_segment(inputs[0], request.prompts, options, facts)
    except SaymapError as exc:
        raise bad_request(str(exc)) from exc
    stored = {**request.model_dump(), "model": model.name}
    for name in ("rasters", "out_crs"):  # a single raster's record stays as it was
        if stored[name] is None:
            del stored[name]
    return stored, plan


def check_validation_area(request: TrainRequest | TrainPreviewRequest) -> None:
    """A validation area must be an area and overlap at least one of the rasters."""
    spec = request.dataset.validation
    if spec is None or spec.area is None:
        return
    area = build_aoi(spec.area)
    problems = []
    for raster in request.dataset.rasters:
        try:
            resolve_region(open_raster(raster), area)
            return
        except SaymapError as exc:
            problems.append(str(exc))
    raise bad_request(
        "the validation area overlaps none of the training rasters: " + "; ".join(problems)
    )


def check_train(request: TrainRequest) -> dict[str, Any]:
    """Dataset files exist, the new name is free, the base model is registered."""
    if registry.exists(request.name):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"a model named {request.name!r} is already registered; choose another name",
        )
    _check_train_inputs(request)
    check_device(request.device)
    try:
        load_recipe(request)
    except (SaymapError, OSError, ValueError, TypeError) as exc:
        # An inline recipe is arbitrary JSON: a wrong type deep inside is the caller's error.
        raise bad_request(f"the recipe cannot be used: {exc}") from exc
    return request.model_dump()


def check_train_preview(request: TrainPreviewRequest) -> TrainPreviewRequest:
    """A preview reads the same files as a train job: the same checks, less the name's."""
    _check_train_inputs(request)
    return request


def _check_train_inputs(request: TrainRequest | TrainPreviewRequest) -> None:
    """What a train job and its preview both read: base model, rasters, labels, area."""
    if request.base_model is not None:
        resolve_model(request.base_model)
    for raster in request.dataset.rasters:
        check_outside_data_dir(raster, "training raster")
        check_input_file(raster, "training raster")
    check_outside_data_dir(request.dataset.labels, "labels file")
    check_input_file(request.dataset.labels, "labels file")
    check_validation_area(request)
