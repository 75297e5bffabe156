"""The model card a training run writes beside its weights: how it was trained and how it
scored, so a model folder says what it is without the run's logs."""

from __future__ import annotations

from typing import Any

from saymap.training.recipe import Recipe
from saymap.training.wrel import Pools


def model_card(
    recipe: Recipe,
    pools: Pools,
    *,
    steps: int,
    metrics: dict[str, float],
    seconds: float,
    device: str,
    notes: list[str],
) -> dict[str, Any]:
    """The card's fields: the recipe, the samples and classes trained on, the validation
    scores, the working resolution, and the notes (such as the class-bank choice)."""
    return {
        "recipe": recipe.to_dict(),
        "method": recipe.wrel.method,
        "steps": steps,
        "train_samples": {"full": len(pools.full), "weak": len(pools.weak)},
        "classes": pools.classes,
        **working_resolution_card(recipe.data.gsd_m),
        "validation": metrics,
        "seconds": round(seconds, 1),
        "device": device,
        "notes": notes,
    }


def working_resolution_card(gsd_m: float | None) -> dict[str, Any]:
    """The card's gsd_m and the native resolutions it suits: anything finer down to a tenth
    (averaging loses nothing the model needs), coarser only up to 2x (no detail to gain)."""
    if gsd_m is None:
        return {}
    return {"gsd_m": gsd_m, "gsd_range_m": [round(gsd_m / 10, 4), round(gsd_m * 2, 4)]}
