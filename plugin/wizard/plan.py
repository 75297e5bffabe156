"""Pure pieces of the fine-tune wizard: counts, recipes, time estimates, the request.

No widgets here, so every rule the pages show can be tested without clicking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..engine_client import SentenceLabel, TrainDataset, TrainRequest  # noqa: TID252 (the plugin folder name varies)

# WREL: a few full expressions per class are enough next to many class-name samples.
SENTENCES_PER_CLASS = 3
SMALL_FEATURE_PX = 16  # features under this many pixels are hard to see in a chip
LARGE_FEATURE_SHARE = 0.5  # features wider than half a chip are cut by it

# Seconds per training step, from ENVIRONMENT.md (2 CPU cores) and a guess for one GPU.
SECONDS_PER_STEP = {"cpu": 1.0, "cuda": 0.15, "mps": 0.5}


@dataclass(frozen=True)
class RecipeChoice:
    """A preset the Settings page offers; steps, chip size and validation come from the page."""

    label: str
    base: Mapping[str, Any]


RECIPES = (
    RecipeChoice(
        "Quick (CPU)",
        {
            "model": {"config": "tiny"},
            "data": {"full_ratio": 1.0, "max_val_samples": 300},
            "optim": {"batch_size": 8, "lr": 6e-4, "weight_decay": 0.05},
            "wrel": {"method": "lrb-wrel", "class_bank": True},
            "run": {"seed": 0, "checkpoint_every": 100},
        },
    ),
    RecipeChoice(
        "Full (GPU)",
        {
            "model": {"config": "tiny"},
            "data": {"full_ratio": 1.0, "max_val_samples": 1000},
            "optim": {"batch_size": 16, "lr": 3e-4, "weight_decay": 0.05},
            "wrel": {"method": "lrb-wrel", "class_bank": True},
            "run": {"seed": 0, "checkpoint_every": 200},
        },
    ),
)


def class_counts(values: Iterable[object]) -> dict[str, int]:
    """Features per class name (empty and NULL values are left out), most common first."""
    counts = Counter(str(v).strip() for v in values if v is not None and str(v).strip())
    return dict(counts.most_common())


def sentence_counts(classes: Iterable[str]) -> dict[str, int]:
    """Full expressions per class, from the classes of the features they point at."""
    return dict(Counter(classes).most_common())


def sentence_advice(weak: Mapping[str, int], full: Mapping[str, int]) -> list[str]:
    """One line per class: its class-name samples, its sentences, and what WREL expects."""
    lines = []
    for name, n_weak in weak.items():
        n_full = full.get(name, 0)
        verdict = (
            "enough" if n_full >= SENTENCES_PER_CLASS else f"add {SENTENCES_PER_CLASS - n_full}"
        )
        lines.append(f"{name}: {n_weak} class-name samples, {n_full} sentences ({verdict})")
    if not any(full.values()):
        lines.append("LRB-WREL needs at least one full sentence to start from.")
    return lines


def steps_for_budget(minutes: float, device_type: str) -> int:
    """How many steps fit a time budget on a device kind."""
    return max(1, int(minutes * 60 / SECONDS_PER_STEP.get(device_type, 1.0)))


def estimate_seconds(steps: int, device_type: str) -> float:
    return steps * SECONDS_PER_STEP.get(device_type, 1.0)


def describe_seconds(seconds: float) -> str:
    """ "about 3 min" / "about 1 h 20 min" / "under a minute"."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60} min"


def build_recipe(
    choice: RecipeChoice, steps: int, chip_size: int, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The inline recipe: the preset, the page's steps and chip size, then any overrides."""
    recipe = {k: dict(v) for k, v in choice.base.items()}
    recipe["optim"]["steps"] = steps
    recipe["optim"]["warmup_steps"] = max(1, min(50, steps // 10))
    recipe["data"]["chip_size"] = chip_size
    recipe["wrel"]["bank_steps"] = max(2, steps // 10)
    recipe["run"]["eval_every"] = max(1, steps // 3)
    for section, values in (overrides or {}).items():
        recipe.setdefault(section, {}).update(values)
    return recipe


# How the Settings page can split off validation. An area keeps neighbouring chips apart;
# a share of features is quicker to set up but lets overlapping chips leak pixels.
VALIDATION_KINDS = (
    ("strip", "An area: the last share of the labels' extent"),
    ("canvas", "An area: the map's current extent"),
    ("fraction", "A share of the features (neighbouring chips may leak)"),
)

Bounds = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax


def strip_bounds(extent: Bounds, share: float) -> tuple[Bounds, str]:
    """The last `share` of an extent along its longer side, and which side that is: the
    east strip of a wide extent, the south strip of a tall one."""
    xmin, ymin, xmax, ymax = extent
    if xmax - xmin >= ymax - ymin:
        return (xmax - share * (xmax - xmin), ymin, xmax, ymax), "east"
    return (xmin, ymin, xmax, ymin + share * (ymax - ymin)), "south"


def validation_spec(kind: str, share: float, extent: Bounds | None, crs: str) -> dict[str, Any]:
    """The request's `validation`: {"fraction": f}, or {"area": {"bounds", "crs"}} from an
    extent in `crs` (the labels' extent for "strip", the map's for "canvas")."""
    if kind == "fraction":
        return {"fraction": share}
    if extent is None:
        raise ValueError(f"no extent to validate on for {kind!r}")
    bounds = strip_bounds(extent, share)[0] if kind == "strip" else extent
    return {"area": {"bounds": [float(v) for v in bounds], "crs": crs}}


def build_request(
    *,
    name: str,
    rasters: Iterable[str],
    labels: str,
    class_field: str,
    sentences: Iterable[tuple[str, str]],
    recipe: Mapping[str, Any],
    validation: Mapping[str, Any] | None,
    base_model: str | None,
    device: str,
) -> TrainRequest:
    """The POST /v1/train body; `sentences` are (sentence, feature WKT in the labels' CRS)."""
    dataset = TrainDataset(
        rasters=tuple(rasters),
        labels=labels,
        class_field=class_field,
        sentences=tuple(SentenceLabel(sentence=s, wkt=w) for s, w in sentences),
        validation=dict(validation) if validation else None,
    )
    return TrainRequest(
        name=name, recipe=dict(recipe), dataset=dataset, base_model=base_model, device=device
    )


def total_steps(recipe: Mapping[str, Any]) -> int:
    """Steps the engine reports for a recipe: LRB-WREL adds the bank's steps to the model's."""
    steps = int((recipe.get("optim") or {}).get("steps", 1))
    wrel = recipe.get("wrel") or {}
    if wrel.get("method", "lrb-wrel") == "lrb-wrel":
        steps += int(wrel.get("bank_steps", 200))
    return max(1, steps)


def metric_point(metrics: Mapping[str, float] | None) -> tuple[int, float, float | None] | None:
    """(step, loss, val_iou or None) from a job's latest metrics, or None before the first."""
    if not metrics or "step" not in metrics or "loss" not in metrics:
        return None
    val = metrics.get("val_iou")
    return int(metrics["step"]), float(metrics["loss"]), float(val) if val is not None else None
