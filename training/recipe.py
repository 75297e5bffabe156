"""Training recipes: a TOML file (or a dict from the server) checked key by key.

Unknown keys are rejected by name, so a typo never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from saymap.engine.errors import SaymapError

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
METHODS = ("accurate-only", "naive-wrel", "lrb-wrel")


class RecipeError(SaymapError, ValueError):
    """A recipe has an unknown key, a wrong type or an impossible value."""


@dataclass
class ModelSection:
    config: str = "tiny"  # a named configuration, or a checkpoint name/path with `init`
    init: str | None = None  # start from this checkpoint (name or folder)
    overrides: dict[str, Any] = field(default_factory=dict)  # SaymapConfig fields


@dataclass
class DataSection:
    synthetic: str | None = None  # folder made by `saymap data synth`
    synthetic_style: str | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)  # rasters + labels + sentences
    refsegrs: str | None = None
    rrsisd: str | None = None
    chip_size: int = 256
    # Ground metres per chip pixel: chips are resampled to it, as `saymap segment` resamples
    # rasters to the model card's gsd_m (which the trained model's card records). None: the
    # rasters' own resolution (and, when fine-tuning, the base model's gsd_m).
    gsd_m: float | None = None
    scale_jitter: float = 0.0  # chips read 1/(1+j)..(1+j) times their side, resized back
    augment: bool = False  # photometric augmentation of real chips (training/augment.py)
    real_share_per_batch: float | None = None  # at least this share of each batch is real
    dubai: str | None = None  # the dubai_landcover folder (its held-out tile is skipped)
    # Dubai's images state no ground resolution and differ about 2x in scale between folders:
    # their own jitter (None: scale_jitter).
    dubai_scale_jitter: float | None = None
    # Each sample of these sources ("layer", "dubai", "synthetic", …) enters the batch draw this
    # many times, so a small source is not drowned by a large one on the same side of the mix;
    # "source/class" (e.g. "dubai/water") repeats one class of a source, and wins over "source".
    source_repeat: dict[str, int] = field(default_factory=dict)
    full_ratio: float = 1.0  # share of targets that keep their full expression (WREL)
    max_train_samples: int | None = None
    max_val_samples: int | None = 200


@dataclass
class OptimSection:
    steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.01
    poly_power: float = 0.9
    warmup_steps: int = 50
    clip_grad: float = 1.0
    # The backbone's lr is lr × this: below 1 keeps pretrained features (backbone_pretrained)
    # from being overwritten while the new parts learn.
    backbone_lr_scale: float = 1.0


@dataclass
class LossSection:
    foreground_weight: float = 1.1  # LAVT's weighted cross-entropy: [0.9, 1.1]
    background_weight: float = 0.9
    dice_weight: float = 1.0
    lovasz_weight: float = 0.0  # Lovász hinge on the final logits (an IoU surrogate); 0: off
    background_head_weight: float = 0.5
    dmols_weight: float = 0.0  # D-MOLS auxiliary objective; 0 switches it off
    dmols_mask_ratio: float = 0.3


@dataclass
class WrelSection:
    method: Literal["accurate-only", "naive-wrel", "lrb-wrel"] = "lrb-wrel"
    full_share_per_batch: float | None = None  # None: as in the data
    stage1_steps: int | None = None  # lrb-wrel: on full expressions; default = steps / 3
    bank_steps: int = 200  # stage 2: fit the reference bank, model frozen
    bank_lr: float = 1e-2
    class_bank: bool = True  # also fit one entry per class, reused at inference
    ema_consistency_weight: float = 0.0  # teacher-student consistency, off as published


@dataclass
class RunSection:
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 100
    eval_every: int = 200
    num_workers: int = 0


@dataclass
class Recipe:
    name: str = "custom"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    wrel: WrelSection = field(default_factory=WrelSection)
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self) -> None:
        if self.wrel.method not in METHODS:
            raise RecipeError(
                f"wrel.method must be one of {', '.join(METHODS)}, not {self.wrel.method!r}"
            )
        if not 0.0 <= self.data.full_ratio <= 1.0:
            raise RecipeError(f"data.full_ratio must be in [0, 1], got {self.data.full_ratio}")
        if any(not isinstance(n, int) or n < 1 for n in self.data.source_repeat.values()):
            raise RecipeError(
                "data.source_repeat values must be whole numbers >= 1, "
                f"got {self.data.source_repeat}"
            )
        jitters = (self.data.scale_jitter, self.data.dubai_scale_jitter or 0.0)
        if any(j < 0 for j in jitters):
            raise RecipeError(
                f"data.scale_jitter and data.dubai_scale_jitter must be >= 0, got {jitters}"
            )
        if self.data.chip_size % 32:
            raise RecipeError(f"data.chip_size must be a multiple of 32, got {self.data.chip_size}")
        if self.optim.steps < 1 or self.optim.batch_size < 1 or self.optim.grad_accum < 1:
            raise RecipeError("optim.steps, optim.batch_size and optim.grad_accum must be >= 1")
        if self.optim.backbone_lr_scale < 0:
            raise RecipeError(
                f"optim.backbone_lr_scale must be >= 0, got {self.optim.backbone_lr_scale}"
            )
        negative = [k for k, v in dataclasses.asdict(self.loss).items() if v < 0]
        if negative:
            raise RecipeError(f"loss weights must be >= 0, got {', '.join(negative)} below 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {
    "model": ModelSection,
    "data": DataSection,
    "optim": OptimSection,
    "loss": LossSection,
    "wrel": WrelSection,
    "run": RunSection,
}


# Keys that say where and how often, not what is trained: a resumed run may change them.
RESUMABLE_CHANGES = frozenset(
    {"name", "run.device", "run.checkpoint_every", "run.eval_every", "run.num_workers"}
)


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and key != "overrides":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def recipe_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`key: saved → current` for every setting a resumed run would train differently with."""
    before, after = _flatten(saved), _flatten(current)
    # A key added since the run was saved counts as its default, which trains as before.
    defaults = _flatten(Recipe().to_dict())
    changed = []
    for key in sorted(set(before) | set(after)):
        if key not in RESUMABLE_CHANGES and before.get(key, defaults.get(key)) != after.get(key):
            changed.append(f"{key}: {before.get(key, defaults.get(key))!r} → {after.get(key)!r}")
    return changed


def recipe_from_dict(values: dict[str, Any], name: str = "custom") -> Recipe:
    unknown = sorted(set(values) - set(_SECTIONS) - {"name"})
    if unknown:
        raise RecipeError(
            f"unknown recipe section(s): {', '.join(unknown)}; known: name, {', '.join(_SECTIONS)}"
        )
    sections = {}
    for key, cls in _SECTIONS.items():
        given = values.get(key, {})
        if not isinstance(given, dict):
            raise RecipeError(f"[{key}] must be a table")
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(given) - known)
        if bad:
            raise RecipeError(
                f"unknown key(s) in [{key}]: {', '.join(bad)}; known: {', '.join(sorted(known))}"
            )
        try:
            sections[key] = cls(**given)
        except TypeError as exc:
            raise RecipeError(f"[{key}]: {exc}") from exc
    return Recipe(name=values.get("name", name), **sections)


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A path to a TOML file, or the name of a shipped recipe (tiny-cpu, base-gpu, ...)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        shipped = sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
        raise RecipeError(
            f"no recipe file or shipped recipe {str(name_or_path)!r}; shipped: {', '.join(shipped)}"
        )
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path} is not valid TOML: {exc}") from exc
    return recipe_from_dict(values, name=path.stem)
