"""COCO segmentation decoding without pycocotools: polygons, uncompressed and compressed RLE.

RRSIS-D (like the RefCOCO family) stores each target as a COCO annotation. RLE runs are in
column-major (Fortran) order and start with a run of zeros; the compressed form packs the
run lengths into printable characters, 5 bits at a time, each run after the second stored
as the difference to the run two before (the scheme of the COCO API's rleToString).
"""

from __future__ import annotations

import numpy as np
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import Polygon

from saymap.engine.errors import DatasetError


def decode_rle_string(text: str) -> list[int]:
    """The run lengths packed in a compressed RLE `counts` string."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            if p >= len(text):
                raise DatasetError("compressed RLE ends in the middle of a number")
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)  # negative: sign-extend
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def decode_rle(counts: list[int] | str, size: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 mask from RLE counts (a list, or a compressed string)."""
    h, w = int(size[0]), int(size[1])
    runs = decode_rle_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if any(r < 0 for r in runs) or sum(runs) != h * w:
        raise DatasetError(f"RLE runs add up to {sum(runs)} pixels, the mask has {h * w}")
    values = np.zeros(len(runs), np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, runs)
    return flat.reshape(w, h).T.copy()  # column-major


def decode_polygons(polygons: list[list[float]], size: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 mask from COCO polygons [[x1, y1, x2, y2, ...], ...] in pixel units."""
    h, w = int(size[0]), int(size[1])
    shapes = []
    for flat in polygons:
        if len(flat) < 6:
            continue  # fewer than 3 points: no area
        points = np.asarray(flat, np.float64).reshape(-1, 2)
        shapes.append((Polygon(points).buffer(0), 1))
    if not shapes:
        return np.zeros((h, w), np.uint8)
    # Identity transform: x is the column, y the row, pixel (r, c) covers [c, c+1) x [r, r+1).
    return rasterize(shapes, out_shape=(h, w), transform=Affine.identity(), dtype="uint8")


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """Any COCO `segmentation` value as an (height, width) uint8 mask."""
    if isinstance(segmentation, list):
        return decode_polygons(segmentation, (height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size") or (height, width)
        return decode_rle(segmentation["counts"], size)
    raise DatasetError(f"unknown COCO segmentation of type {type(segmentation).__name__}")
