"""POST /v1/train/suggest: sentences about the request's own label features, at once.

Computed by `saymap.training.suggestions` on the chips a train job with this request would
cut (the same working resolution, chips, validation split and hold-outs as the preview), so
each sentence is true of its one feature where training will show it.
"""

from __future__ import annotations

from typing import Any

from saymap.engine.errors import SaymapError
from saymap.engine.server.preflight import bad_request
from saymap.engine.server.schemas import TrainSuggestRequest
from saymap.engine.server.train_preview import planned_recipe


def suggest_for_training(request: TrainSuggestRequest) -> dict[str, Any]:
    """The answer's body; a 400 naming the fault when the dataset cannot be built."""
    recipe, gsd_m = planned_recipe(request)
    from saymap.training.suggestions import suggest_sentences

    try:
        found = suggest_sentences(
            request.dataset.model_dump(), recipe, gsd_m, request.limit, request.seed
        )
    except (SaymapError, OSError, ValueError, TypeError) as exc:
        raise bad_request(str(exc)) from exc
    return {"suggestions": [s._asdict() for s in found]}
