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


# Both fine-tune a base model: its backbone learns at a tenth of the rate of the new parts, so
# a few hundred chips adjust it rather than overwrite it, and the rate stays at or below the
# one the shipped default ended its own training with (1e-4). On Kampala (7 samples, 150 steps,
# scripts/kampala_finetune.py, BENCHMARKS.md, Fine-tune on real data) lr 2e-4 took the stage-3
# default's hold-out IoU from 0.573 to 0.583 but the current default's from 0.540 to 0.444;
# lr 5e-5 gave 0.567 and 0.562: a little less at best, never the collapse.
RECIPES = (
    RecipeChoice(
        "Quick (CPU)",
        {
            "model": {"config": "tiny"},
            "data": {"full_ratio": 1.0, "max_val_samples": 300},
            "optim": {
                "batch_size": 8,
                "lr": 5e-5,
                "backbone_lr_scale": 0.1,
                "weight_decay": 0.05,
            },
            "wrel": {"method": "lrb-wrel", "class_bank": True},
            "run": {"seed": 0, "checkpoint_every": 100},
        },
    ),
    RecipeChoice(
        "Full (GPU)",
        {
            "model": {"config": "tiny"},
            "data": {"full_ratio": 1.0, "max_val_samples": 1000},
            "optim": {
                "batch_size": 16,
                "lr": 1e-4,  # twice the CPU preset's for twice its batch
                "backbone_lr_scale": 0.1,
                "weight_decay": 0.05,
            },
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


def sentence_advice(
    weak: Mapping[str, int], full: Mapping[str, int], usable: Mapping[str, int] | None = None
) -> list[str]:
    """One line per class: its labelled features, its sentences, how many of them train
    (`usable`, from the engine's preview; None before it answered) and what WREL expects."""
    lines = []
    for name, n_weak in weak.items():
        n_full = full.get(name, 0)
        n_used = n_full if usable is None else usable.get(name, 0)
        verdict = (
            "enough" if n_used >= SENTENCES_PER_CLASS else f"add {SENTENCES_PER_CLASS - n_used}"
        )
        if usable is None or n_used == n_full:
            said = f"{n_full} sentences"
        else:
            said = f"{n_used} of {n_full} sentences train"
        lines.append(f"{name}: {n_weak} labelled features, {said} ({verdict})")
    return lines


# What the engine's preview says of each sentence: (the list's word, its tooltip).
FATES = {
    "train": ("trains", "Outside the validation area: this sentence trains the model."),
    "validation": (
        "validation area",
        "Inside the validation area: this sentence only measures the model, it does not "
        "train it. Move the validation area, or pick a feature elsewhere.",
    ),
    "edge": (
        "validation edge",
        "Its chip crosses the validation area's edge, so it is in neither set (no pixel may "
        "be in both). Move the validation area, or pick a feature further from it.",
    ),
    "held_out": (
        "hold-out",
        "Its chip touches the real-imagery hold-out (the east quarter of SayMap's shared "
        "test rasters), which training never sees. Pick a feature further west.",
    ),
    "unused": ("not used", "The recipe leaves this sentence out."),
}


@dataclass(frozen=True)
class TrainPreview:
    """The engine's POST /v1/train/preview answer: what a job would train and validate on."""

    fates: tuple[tuple[str, str | None], ...]  # (fate, class) per request sentence
    train_weak: int
    train_full: int
    val_weak: int
    val_full: int
    edge: int
    held_out: int
    method: str
    problem: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainPreview:
        train, val = data.get("train") or {}, data.get("validation") or {}
        return cls(
            fates=tuple(
                (str(s.get("fate", "unused")), s.get("class_name"))
                for s in data.get("sentences") or ()
            ),
            train_weak=int(train.get("weak", 0)),
            train_full=int(train.get("full", 0)),
            val_weak=int(val.get("weak", 0)),
            val_full=int(val.get("full", 0)),
            edge=int(data.get("edge", 0)),
            held_out=int(data.get("held_out", 0)),
            method=str(data.get("method", "lrb-wrel")),
            problem=data.get("problem"),
        )

    def usable(self) -> dict[str, int]:
        """Training sentences per class."""
        return dict(Counter(str(k) for f, k in self.fates if f == "train"))

    def split_summary(self) -> str:
        """One line for the Settings page: what trains, what validates, what is left out."""
        parts = [
            f"trains on {self.train_weak} class-name chips and "
            f"{plural(self.train_full, 'sentence')}",
            f"validates on {plural(self.val_weak + self.val_full, 'chip')}",
        ]
        if self.edge:
            parts.append(f"{plural(self.edge, 'chip')} across its edge left out")
        if self.held_out:
            parts.append(f"{plural(self.held_out, 'chip')} in the real-imagery hold-out")
        summary = "; ".join(parts)
        if self.train_weak + self.train_full < FEW_SAMPLES:
            summary += ". " + FEW_SAMPLES_NOTE
        return summary


# Below this many training samples a fine-tune can narrow a strong base model rather than
# teach it: with the whole model at one rate scripts/kampala_finetune.py took the default's
# Kampala hold-out building IoU from 0.57 to 0.49 with 7 samples (BENCHMARKS.md).
FEW_SAMPLES = 30
FEW_SAMPLES_NOTE = (
    "So few samples can leave the model worse than the base model on other imagery: label "
    "more features, and compare validation IoU before and after on the last page"
)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def sentence_problem(preview: TrainPreview | None, n_sentences: int, naive: bool) -> str | None:
    """Why the Sentences page cannot go on, or None: LRB-WREL starts from sentences, so at
    least one must train (naive WREL needs none)."""
    if naive:
        return None
    if n_sentences == 0:
        return (
            "Add a sentence: LRB-WREL learns from a few full sentences first. Or train on "
            "class names alone (naive WREL), below."
        )
    if preview is None or preview.train_full:
        return None
    fates = Counter(f for f, _ in preview.fates)
    where = ", ".join(f"{n} {FATES.get(f, (f, ''))[0]}" for f, n in fates.items() if f != "train")
    return (
        f"None of the {n_sentences} sentences can train ({where}): LRB-WREL needs at least one "
        "outside the validation area. Move the validation area, pick features elsewhere, or "
        "train on class names alone (naive WREL)."
    )


NAIVE_WREL_NOTE = (
    "LRB-WREL first learns from full sentences, then teaches itself the class-name samples "
    "from them; with no sentence to start from it cannot run. Naive WREL trains on the class "
    "names alone: the model learns to find each class (“building”), but not to tell "
    "objects apart by a description (“the long building beside the road”)."
)


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
    choice: RecipeChoice,
    steps: int,
    chip_size: int,
    overrides: Mapping[str, Any] | None = None,
    method: str | None = None,
) -> dict[str, Any]:
    """The inline recipe: the preset, the page's steps and chip size, the WREL method when
    it is not the preset's (naive WREL for class names alone), then any overrides."""
    recipe = {k: dict(v) for k, v in choice.base.items()}
    if method:
        recipe["wrel"]["method"] = method
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
    ("strip", "An area: a strip along one side of the labels' extent"),
    ("canvas", "An area: the map's current extent"),
    ("fraction", "A share of the features (neighbouring chips may leak)"),
)
# Which side of the labels' extent the strip lies on; "auto" is the far end of the longer
# side (the east strip of a wide extent, the south strip of a tall one).
VALIDATION_SIDES = (
    ("auto", "east or south (the end of the longer side)"),
    ("east", "east"),
    ("west", "west"),
    ("north", "north"),
    ("south", "south"),
)

Bounds = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax


def strip_bounds(extent: Bounds, share: float, side: str = "auto") -> tuple[Bounds, str]:
    """The `share` of an extent along one side, and which side that is."""
    xmin, ymin, xmax, ymax = extent
    if side == "auto":
        side = "east" if xmax - xmin >= ymax - ymin else "south"
    width, height = share * (xmax - xmin), share * (ymax - ymin)
    bounds = {
        "east": (xmax - width, ymin, xmax, ymax),
        "west": (xmin, ymin, xmin + width, ymax),
        "north": (xmin, ymax - height, xmax, ymax),
        "south": (xmin, ymin, xmax, ymin + height),
    }
    if side not in bounds:
        raise ValueError(f"no side {side!r}; one of {', '.join(bounds)}")
    return bounds[side], side


def validation_spec(
    kind: str, share: float, extent: Bounds | None, crs: str, side: str = "auto"
) -> dict[str, Any]:
    """The request's `validation`: {"fraction": f}, or {"area": {"bounds", "crs"}} from an
    extent in `crs` (the labels' extent for "strip", the map's for "canvas")."""
    if kind == "fraction":
        return {"fraction": share}
    if extent is None:
        raise ValueError(f"no extent to validate on for {kind!r}")
    bounds = strip_bounds(extent, share, side)[0] if kind == "strip" else extent
    return {"area": {"bounds": [float(v) for v in bounds], "crs": crs}}


def describe_validation(kind: str, share: float, extent: Bounds | None, side: str) -> str:
    """ "the east 20 % of the labels' extent" / "the map's current extent" / "20 % of the
    features"."""
    percent = f"{share * 100:.0f} %"
    if kind == "fraction":
        return f"{percent} of the features (chosen by feature id)"
    if kind == "canvas":
        return "the map's current extent"
    named = strip_bounds(extent, share, side)[1] if extent is not None else side
    return f"the {named} {percent} of the labels' extent"


# Where a failed job's fix belongs: the first rule whose words the error contains.
DATA_PAGE, SENTENCES_PAGE, SETTINGS_PAGE = 0, 1, 2
FIX_RULES = (
    (("sentence", "expression"), SENTENCES_PAGE),
    (
        ("validation", "already registered", "name", "recipe", "chip", "device", "memory"),
        SETTINGS_PAGE,
    ),
    (("label", "raster", "class", "crs", "feature", "field", "overlap"), DATA_PAGE),
)
PAGE_NAMES = {DATA_PAGE: "Data", SENTENCES_PAGE: "Sentences", SETTINGS_PAGE: "Settings"}


def fix_page(error: str) -> int:
    """The wizard page where the cause of a failed job can be changed (Settings when no
    rule knows it)."""
    text = error.lower()
    for words, page in FIX_RULES:
        if any(word in text for word in words):
            return page
    return SETTINGS_PAGE


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
