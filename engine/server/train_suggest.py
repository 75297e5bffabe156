"""POST /v1/train/suggest: sentences about the request's own label features, at once.

Computed by `saymap.training.suggestions` on the chips a train job with this request would
cut (the same working resolution, chips, validation split and hold-outs as the preview), so
each sentence is true of its one feature where training will show it.
"""

from __future__ import annotations

from typing import Any

from saymap.engine import registry
from saymap.engine.errors import SaymapError
from saymap.engine.server.preflight import bad_request
from saymap.engine.server.schemas import TrainSuggestRequest
from saymap.engine.server.train_job import load_recipe
from saymap.training.data_sources import inherit_working_resolution


def suggest_for_training(request: TrainSuggestRequest) -> dict[str, Any]:
    """The answer's body; a 400 naming the fault when the dataset cannot be built."""
    try:
        recipe = load_recipe(request)
    except (SaymapError, OSError, ValueError, TypeError) as exc:
        # An inline recipe is arbitrary JSON: a wrong type deep inside is the caller's error.
        raise bad_request(f"the recipe cannot be used: {exc}") from exc
    from saymap.training.suggestions import suggest_sentences

    try:
        if request.base_model:
            recipe.model.init = str(registry.resolve(request.base_model))
        gsd_m = inherit_working_resolution(recipe)
        found = suggest_sentences(
            request.dataset.model_dump(), recipe, gsd_m, request.limit, request.seed
        )
    except (SaymapError, OSError, ValueError, TypeError) as exc:
        raise bad_request(str(exc)) from exc
    return {"suggestions": [s._asdict() for s in found]}
