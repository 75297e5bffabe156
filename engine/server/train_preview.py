"""POST /v1/train/preview: what a train job would train and validate on, at once.

The answer comes from the trainer's own code (`saymap.training.preview`): the same working
resolution, chips, validation split, hold-outs, WREL pools and stage plan a job would use.
"""

from __future__ import annotations

from typing import Any

from saymap.engine import registry
from saymap.engine.errors import SaymapError
from saymap.engine.server.preflight import bad_request
from saymap.engine.server.schemas import TrainPreviewRequest
from saymap.engine.server.train_job import load_recipe
from saymap.training.data_sources import inherit_working_resolution
from saymap.training.recipe import Recipe


def planned_recipe(request: TrainPreviewRequest) -> tuple[Recipe, float | None]:
    """The request's recipe with its base model resolved, and the working resolution a job
    would use; a 400 naming the fault. Shared by the preview and the suggestions."""
    try:
        recipe = load_recipe(request)
    except (SaymapError, OSError, ValueError, TypeError) as exc:
        # An inline recipe is arbitrary JSON: a wrong type deep inside is the caller's error.
        raise bad_request(f"the recipe cannot be used: {exc}") from exc
    try:
        if request.base_model:
            recipe.model.init = str(registry.resolve(request.base_model))
        return recipe, inherit_working_resolution(recipe)
    except (SaymapError, OSError, ValueError, TypeError) as exc:
        raise bad_request(str(exc)) from exc


def preview_training(request: TrainPreviewRequest) -> dict[str, Any]:
    """The preview's body; a 400 naming the fault when the dataset cannot be built."""
    recipe, gsd_m = planned_recipe(request)
    from saymap.training.preview import preview_request

    try:
        return preview_request(request.dataset.model_dump(), recipe, gsd_m).to_json()
    except (SaymapError, OSError, ValueError, TypeError) as exc:
        raise bad_request(str(exc)) from exc
