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


def split_held_out(
    built: LayerDataset, indices: Iterable[int], fraction: float
) -> tuple[LayerSubset, LayerSubset]:
    """Train/validation by feature id: all samples of a held-out feature go together."""
    indices = list(indices)
    val = [k for k in indices if held_out(built.records[k].sample_id, fraction)]
    train = [k for k in indices if not held_out(built.records[k].sample_id, fraction)]
    if not train or not val:
        raise DatasetError(
            f"a validation fraction of {fraction} leaves {len(train)} training and "
            f"{len(val)} validation samples; label more features or change the fraction"
        )
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


def split_by_area(built: LayerDataset, indices: Iterable[int], area: AOI) -> AreaSplit:
    """Validation: chips wholly inside `area`; training: chips that do not touch it."""
    pixel_areas = {}
    train: list[int] = []
    val: list[int] = []
    straddling = 0
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
            straddling += 1
    if not val:
        raise DatasetError(
            f"the validation area ({area.label}) holds no whole chip: no chip of "
            f"{built.records[0].size} px lies inside it ({straddling} cross its edge); "
            "make the area larger or validate on a share of the features instead"
        )
    if not train:
        raise DatasetError(
            f"the validation area ({area.label}) leaves no chip to train on: every chip "
            "lies inside it or crosses its edge; make the area smaller"
        )
    if straddling:
        log.info(
            "%d chips cross the validation area's edge and are left out of both sets", straddling
        )
    return AreaSplit(LayerSubset(built, train), LayerSubset(built, val), straddling)


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


def split_validation(
    built: LayerDataset, indices: Iterable[int], *, area: AOI | None = None, fraction: float = 0.0
) -> tuple[LayerSubset, LayerSubset | None]:
    """(train, validation) by area, else by a share of features; (all, None) without either.

    Chips of the scorecard's hold-outs (`built.held`) may validate but never train."""
    if area is not None:
        split = split_by_area(built, indices, area)
        train, val = split.train, split.val
    elif fraction <= 0.0:
        train, val = LayerSubset(built, list(indices)), None
    else:
        train, val = split_held_out(built, indices, fraction)
    held = getattr(built, "held", frozenset())
    if held:
        train = LayerSubset(built, [k for k in train.indices if k not in held])
        if not train.indices:
            raise DatasetError(
                "every training chip touches the real-imagery hold-out (the east 25 % of the "
                "shared rasters, which `saymap scorecard` scores): label features elsewhere"
            )
    return train, val
