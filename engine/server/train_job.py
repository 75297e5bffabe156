"""The train job: a dataset description + recipe → `saymap.training` → a registered model.

The service sits above both the engine's library and the trainer, so this is where the
server reaches into `saymap.training`.
"""

from __future__ import annotations

import logging
import ntpath
import posixpath
import shutil
import tomllib
from pathlib import Path
from typing import Any

from saymap.engine import paths, registry
from saymap.engine.aoi import aoi_from_json
from saymap.engine.device import choose_device
from saymap.engine.errors import SaymapError
from saymap.engine.model import load_model
from saymap.engine.server.jobs import JobContext
from saymap.engine.server.schemas import TrainPreviewRequest, TrainRequest
from saymap.training.data_sources import datasets_from_layers, inherit_working_resolution
from saymap.training.evaluate import evaluate_by_kind
from saymap.training.recipe import RECIPES_DIR, Recipe, recipe_from_dict
from saymap.training.recipe import load_recipe as load_recipe_file
from saymap.training.splits import thin
from saymap.training.trainer import train
from saymap.training.validation_outputs import write_validation

log = logging.getLogger(__name__)

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a few dozen lines


class NotARecipe(SaymapError, ValueError):
    """A request's recipe names no shipped recipe and no recipe file."""


def recipe_file(text: str) -> Path:
    """The file a request's recipe string names: a shipped recipe, by name, or the absolute
    path of a TOML file whose tables and keys are a recipe's.

    Anything else is refused quoting nothing from the file: the engine reads any file its
    user can, and the keys of someone's settings file are not the caller's to learn."""
    if not (posixpath.isabs(text) or ntpath.isabs(text)):
        shipped = sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
        if text in shipped:
            return RECIPES_DIR / f"{text}.toml"
        raise NotARecipe(
            f"no shipped recipe named {text!r}; give one of {', '.join(shipped)}, the absolute "
            "path of a recipe file, or the recipe itself as an object"
        )
    path = Path(text)
    try:
        with path.open("rb") as handle:
            values = tomllib.loads(handle.read(MAX_RECIPE_BYTES + 1).decode("utf-8"))
    except OSError as exc:
        raise NotARecipe(f"the recipe file {path} cannot be read: {exc.strerror}") from exc
    except ValueError as exc:  # UnicodeDecodeError and TOMLDecodeError both are
        raise NotARecipe(f"the recipe file {path} is not TOML") from exc
    known = Recipe().to_dict()
    sections = {key for key, value in known.items() if isinstance(value, dict)}
    fits = set(values) <= set(known) and all(
        isinstance(values[key], dict) and set(values[key]) <= set(known[key])
        for key in sections & set(values)
    )
    if not fits:
        raise NotARecipe(
            f"{path} is not a SayMap recipe: its tables and keys are not a recipe's (a recipe "
            f"has {', '.join(sorted(sections))}; see the shipped recipes)"
        )
    return path


def load_recipe(request: TrainRequest | TrainPreviewRequest) -> Recipe:
    """The request's recipe (a shipped name, a recipe file or an inline object); RecipeError
    or NotARecipe names the fault."""
    if isinstance(request.recipe, dict):
        return recipe_from_dict(request.recipe)
    return load_recipe_file(recipe_file(request.recipe))


def _event_metrics(event: Any) -> dict[str, Any]:
    """A trainer event as the contract's metrics event: step, loss, lr, val_iou (+ the rest)."""
    extra = dict(getattr(event, "metrics", None) or {})
    values = {"step": event.step, "loss": event.loss, "lr": event.lr, **extra}
    if "all/mIoU" in extra:
        values["val_iou"] = extra["all/mIoU"]
    return values


def before_metrics(base_model: str, val_set: Any, chip_size: int, device: str) -> dict[str, float]:
    """The base model's validation IoU before any step (the trainer's own evaluator), so
    the wizard can show before and after on the same samples."""
    chosen, _why = choose_device(device)
    model = load_model(registry.resolve(base_model), device=chosen)
    values = evaluate_by_kind(model, val_set, chip_size)
    return {"val_iou_before": values["all/mIoU"]} if "all/mIoU" in values else {}


def start_training(request: TrainRequest, context: JobContext) -> dict[str, Any]:
    """Train per the request into a job folder, then register the result under request.name.

    base_model, when given, is where training starts (the recipe's model.init); null leaves
    the recipe's own model section in charge.
    """
    recipe = load_recipe(request)
    if request.base_model:
        recipe.model.init = str(registry.resolve(request.base_model))
    recipe.run.device = request.device
    context.progress(0.0, "reading the training data")
    train_set, val_set = datasets_from_layers(
        request.dataset.model_dump(),
        chip_size=recipe.data.chip_size,
        gsd_m=inherit_working_resolution(recipe),
    )
    if val_set is not None:
        val_set = thin(val_set, recipe.data.max_val_samples)
    context.raise_if_cancelled()
    before: dict[str, float] = {}  # sent with every metrics event (the contract: step, loss, lr)
    if request.base_model and val_set is not None and len(val_set):
        context.progress(0.0, f"scoring {request.base_model} on the validation samples")
        before = before_metrics(request.base_model, val_set, recipe.data.chip_size, request.device)
        context.raise_if_cancelled()
    out_dir = paths.data_dir() / "training" / context.job_id
    # If killed: the work folder, by its exact name. registry.register's hidden copy of a
    # half-copied model (`models/.<name>.<random>`) is named inside it, so it cannot be
    # recorded here; listings ignore it.
    context.set_cleanup([str(out_dir)])

    def on_event(event: Any) -> None:
        total = max(1, int(event.total_steps))
        context.metrics({**_event_metrics(event), **before})
        context.progress(
            min(event.step, total) / total, f"{event.stage}: step {event.step}/{total}"
        )

    try:
        result = train(
            recipe,
            out_dir,
            train_set,
            val_set,
            events=on_event,
            cancel=context.cancel,
            resume=False,
        )
        validation = None
        if val_set is not None and len(val_set):
            validation = write_validation_outputs(request, result.model_dir, val_set, context)
        context.progress(1.0, f"registering model {request.name}")
        entry = registry.register(Path(result.model_dir), request.name)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    answer: dict[str, Any] = {
        "output": None,
        "n_features": None,
        "model": entry.name,
        "model_path": str(entry.path),
        "steps": int(result.steps),
        "seconds": round(float(result.seconds), 3),
        "notes": [str(n) for n in result.notes],
    }
    if validation is not None:  # the same files, now inside the registered model
        moved = entry.path / registry.VALIDATION_DIR
        answer["val_iou"] = result.metrics.get("all/mIoU")
        answer["validation_chips"] = str(moved / validation.chips.name)
        answer["validation_predictions"] = [str(moved / p.name) for p in validation.predictions]
    return answer


def write_validation_outputs(
    request: TrainRequest, model_dir: Path, val_set: Any, context: JobContext
) -> Any:
    """The validation chips and predictions beside the trained model, before it is copied."""
    spec = request.dataset.validation
    area = (
        aoi_from_json(spec.area.model_dump(), "validation area")
        if spec is not None and spec.area is not None
        else None
    )
    context.progress(1.0, "writing the validation chips")
    return write_validation(
        Path(model_dir),
        val_set,
        area,
        device=request.device,
        progress=lambda message: context.progress(1.0, message),
        cancel=context.cancel,
    )


def run_training(context: JobContext) -> dict[str, Any]:
    """The job runner: the request was checked before queueing."""
    return start_training(TrainRequest.model_validate(context.request), context)
