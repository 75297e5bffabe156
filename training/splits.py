"""Validation splits of a layer dataset: by feature id, or by area.

Chips cut around neighbouring features overlap, so a split by feature lets the same pixels
appear in training and validation. The area split does not: a chip is validation when it
lies wholly inside the area, training when it does not touch it, and left out when it
straddles the edge.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import shapely
from shapely.geometry import box

from saymap.engine.aoi import AOI, to_raster_crs
from saymap.engine.errors import DatasetError
from saymap.training.datasets import LayerDataset, LayerSubset

log = logging.getLogger(__name__)


def held_out(sample_id: str, fraction: float) -> bool:
    """A stable, seedless choice of validation samples: by a hash of the feature's id."""
    key = sample_id.split("/")[1] if "/" in sample_id else sample_id
    return zlib.crc32(key.encode()) % 10_000 < fraction * 10_000


def assign_held_out(
    built: LayerDataset, indices: Iterable[int], fraction: float
) -> tuple[list[int], list[int], str | None]:
    """(train, validation, why that cannot be used or None) by feature id."""
    indices = list(indices)
    val = [k for k in indices if held_out(built.records[k].sample_id, fraction)]
    train = [k for k in indices if not held_out(built.records[k].sample_id, fraction)]
    problem = None
    if not train or not val:
        problem = (
            f"a validation fraction of {fraction} leaves {len(train)} training and "
            f"{len(val)} validation samples; label more features or change the fraction"
        )
    return train, val, problem


def split_held_out(
    built: LayerDataset, indices: Iterable[int], fraction: float
) -> tuple[LayerSubset, LayerSubset]:
    """Train/validation by feature id: all samples of a held-out feature go together."""
    train, val, problem = assign_held_out(built, indices, fraction)
    if problem:
        raise DatasetError(problem)
    return LayerSubset(built, train), LayerSubset(built, val)


@dataclass(frozen=True)
class AreaSplit:
    train: LayerSubset
    val: LayerSubset
    straddling: int  # chips cut by the area's edge, in neither set


def area_in_pixels(built: LayerDataset, raster: int, area: AOI) -> shapely.Geometry:
    """The area as a polygon in one raster's pixel space (col, row)."""
    spec = built.specs[raster]
    inverse = ~spec.transform
    return shapely.affinity.affine_transform(
        to_raster_crs(area, spec),
        [inverse.a, inverse.b, inverse.d, inverse.e, inverse.c, inverse.f],
    )


def assign_by_area(
    built: LayerDataset, indices: Iterable[int], area: AOI
) -> tuple[list[int], list[int], list[int], str | None]:
    """(train, validation, straddling, why that cannot be used or None): validation are the
    chips wholly inside `area`, training the chips that do not touch it."""
    pixel_areas = {}
    train: list[int] = []
    val: list[int] = []
    edge: list[int] = []
    for k in indices:
        r = built.records[k]
        if r.raster not in pixel_areas:
            pixel_areas[r.raster] = area_in_pixels(built, r.raster, area)
            shapely.prepare(pixel_areas[r.raster])
        region = pixel_areas[r.raster]
        chip = box(r.col, r.row, r.col + r.size, r.row + r.size)
        if region.covers(chip):
            val.append(k)
        elif region.intersection(chip).area == 0.0:
            train.append(k)
        else:
            edge.append(k)
    problem = None
    if not val:
        size = built.records[0].size if built.records else 0
        problem = (
            f"the validation area ({area.label}) holds no whole chip: no chip of "
            f"{size} px lies inside it ({len(edge)} cross its edge); "
            "make the area larger or validate on a share of the features instead"
        )
    elif not train:
        problem = (
            f"the validation area ({area.label}) leaves no chip to train on: every chip "
            "lies inside it or crosses its edge; make the area smaller"
        )
    return train, val, edge, problem


def split_by_area(built: LayerDataset, indices: Iterable[int], area: AOI) -> AreaSplit:
    """Validation: chips wholly inside `area`; training: chips that do not touch it."""
    train, val, edge, problem = assign_by_area(built, indices, area)
    if problem:
        raise DatasetError(problem)
    if edge:
        log.info(
            "%d chips cross the validation area's edge and are left out of both sets", len(edge)
        )
    return AreaSplit(LayerSubset(built, train), LayerSubset(built, val), len(edge))


def evenly_spaced(n: int, limit: int | None) -> list[int]:
    """`limit` positions spread evenly over range(n) (all of them when n <= limit): a cap on
    samples that keeps every part of the set, the same on every run."""
    if limit is None or n <= limit:
        return list(range(n))
    return [int(k * n / limit) for k in range(limit)]


def thin(subset: LayerSubset, limit: int | None) -> LayerSubset:
    """At most `limit` of the subset's samples, spread evenly over it (deterministic)."""
    if limit is None or len(subset.indices) <= limit:
        return subset
    picks = evenly_spaced(len(subset.indices), limit)
    return LayerSubset(subset.dataset, [subset.indices[k] for k in picks])


@dataclass(frozen=True)
class Assignment:
    """Where each chip of a layer dataset goes, and why the split cannot be used (or None).

    `held` are chips kept out of training by the scorecard's hold-out (they may validate);
    `edge` are chips across the validation area's edge, in neither set."""

    train: list[int]
    val: list[int] | None
    edge: list[int]
    held: list[int]
    problem: str | None


HOLDOUT_PROBLEM = (
    "every training chip touches the real-imagery hold-out (the east 25 % of the "
    "shared rasters, which `saymap scorecard` scores): label features elsewhere"
)


def assign_validation(
    built: LayerDataset, indices: Iterable[int], *, area: AOI | None = None, fraction: float = 0.0
) -> Assignment:
    """`split_validation`'s decision for every chip, without raising: what a train request
    would train and validate on (the wizard shows it before training)."""
    edge: list[int] = []
    val: list[int] | None
    if area is not None:
        train, val, edge, problem = assign_by_area(built, indices, area)
    elif fraction <= 0.0:
        train, val, problem = list(indices), None, None
    else:
        train, val, problem = assign_held_out(built, indices, fraction)
    held_set = getattr(built, "held", frozenset())
    held = [k for k in train if k in held_set]
    if held:
        train = [k for k in train if k not in held_set]
        if not train and problem is None:
            problem = HOLDOUT_PROBLEM
    return Assignment(train, val, edge, held, problem)


def split_validation(
    built: LayerDataset, indices: Iterable[int], *, area: AOI | None = None, fraction: float = 0.0
) -> tuple[LayerSubset, LayerSubset | None]:
    """(train, validation) by area, else by a share of features; (all, None) without either.

    Chips of the scorecard's hold-outs (`built.held`) may validate but never train."""
    chosen = assign_validation(built, indices, area=area, fraction=fraction)
    if chosen.problem:
        raise DatasetError(chosen.problem)
    if chosen.edge:
        log.info(
            "%d chips cross the validation area's edge and are left out of both sets",
            len(chosen.edge),
        )
    val = LayerSubset(built, chosen.val) if chosen.val is not None else None
    return LayerSubset(built, chosen.train), val
