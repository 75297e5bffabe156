"""The schedule of a training run: its stages and their steps, the learning rate at each
model step, and the optimizer's parameter groups the rate applies to."""

from __future__ import annotations

import logging
from typing import Any

import torch

from saymap.engine.errors import DatasetError
from saymap.engine.model import SaymapModel
from saymap.training.recipe import Recipe
from saymap.training.wrel import Pools

log = logging.getLogger(__name__)


def plan_stages(recipe: Recipe, pools: Pools) -> list[tuple[str, int]]:
    """(stage, steps) in order for the recipe's method, or DatasetError where the data
    lacks what a stage needs."""
    r, p = recipe, pools
    steps = r.optim.steps
    if r.wrel.method == "accurate-only":
        if not p.full:
            raise DatasetError(
                "accurate-only training needs full expressions and this dataset has none; "
                "add sentences, or use wrel.method = 'naive-wrel'"
            )
        return [("supervised", steps)]
    if r.wrel.method == "naive-wrel":
        if not p.full:
            log.warning("no full expressions: naive WREL trains on class names alone")
        return [("supervised", steps)]
    if not p.full:
        raise DatasetError(
            "LRB-WREL stage 1 needs full expressions (sentences) and this dataset has none; "
            "add a few sentences, or ask for wrel.method = 'naive-wrel'"
        )
    if not p.weak:
        return [("full", steps)]
    stage1 = r.wrel.stage1_steps if r.wrel.stage1_steps is not None else steps // 3
    return [("full", stage1), ("bank", r.wrel.bank_steps), ("mix", steps - stage1)]


def poly_lr(base: float, step: int, total: int, power: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then polynomial decay towards 0 at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (1 - min(step, total - 1) / total) ** power


def param_groups(
    model: SaymapModel, extra: list[torch.nn.Parameter], backbone_lr_scale: float
) -> list[dict[str, Any]]:
    """The optimizer's groups: the backbone at lr × backbone_lr_scale (kept apart only when
    the scale is not 1, so states saved with one group still resume), everything else at lr.
    Each group's `lr_scale` is what the schedule multiplies its lr by."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if backbone_lr_scale == 1.0:
        return [{"params": trainable + extra, "lr_scale": 1.0}]
    backbone = {id(p) for p in model.backbone.parameters()}
    return [
        {"params": [p for p in trainable if id(p) not in backbone] + extra, "lr_scale": 1.0},
        {
            "params": [p for p in trainable if id(p) in backbone],
            "lr_scale": backbone_lr_scale,
        },
    ]
