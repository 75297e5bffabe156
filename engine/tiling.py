"""Tile grids over a raster region, and the weight window that blends overlapping tiles.

Every tile is full size (the model always sees tile_size × tile_size pixels): tiles at the
right and bottom overhang the region and are padded by the reader, never shrunk. Tiles come
row by row, so the blender only keeps the rows that later tiles still overlap.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from rasterio.windows import Window

from saymap.engine.errors import OptionError

WEIGHT_FLOOR = 0.05  # edge pixels still count, so raster borders blend to their own value


@dataclass(frozen=True)
class Tile:
    """One model input: `window` (always size × size, raster pixels; may overhang the region)
    and `placement`, the part of it inside the region, which is what gets blended in."""

    index: int
    grid_row: int
    grid_col: int
    row_off: int
    col_off: int
    size: int
    place_row0: int
    place_col0: int
    place_row1: int
    place_col1: int

    @property
    def window(self) -> Window:
        return Window(self.col_off, self.row_off, self.size, self.size)

    @property
    def placement(self) -> Window:
        return Window(
            self.place_col0,
            self.place_row0,
            self.place_col1 - self.place_col0,
            self.place_row1 - self.place_row0,
        )

    def placement_in_tile(self) -> tuple[slice, slice]:
        """Rows and columns of the tile array that fall inside the region."""
        return (
            slice(self.place_row0 - self.row_off, self.place_row1 - self.row_off),
            slice(self.place_col0 - self.col_off, self.place_col1 - self.col_off),
        )


def _starts(offset: int, length: int, size: int, stride: int) -> list[int]:
    count = 1 if length <= size else 1 + math.ceil((length - size) / stride)
    return [offset + i * stride for i in range(count)]


@dataclass(frozen=True)
class TileGrid:
    """Tiles of `size` pixels stepping by size - overlap over a region (a raster window)."""

    region_row: int
    region_col: int
    region_height: int
    region_width: int
    size: int
    overlap: int

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise OptionError(f"tile size must be positive, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise OptionError(
                f"overlap must be at least 0 and less than the tile size ({self.size}), "
                f"got {self.overlap}"
            )
        if self.region_height <= 0 or self.region_width <= 0:
            raise OptionError("the region to segment is empty")

    @classmethod
    def over(cls, region: Window, size: int, overlap: int) -> TileGrid:
        return cls(
            int(region.row_off),
            int(region.col_off),
            int(region.height),
            int(region.width),
            size,
            overlap,
        )

    @property
    def stride(self) -> int:
        return self.size - self.overlap

    @cached_property
    def row_starts(self) -> list[int]:
        return _starts(self.region_row, self.region_height, self.size, self.stride)

    @cached_property
    def col_starts(self) -> list[int]:
        return _starts(self.region_col, self.region_width, self.size, self.stride)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.row_starts), len(self.col_starts)

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    @property
    def region_row_end(self) -> int:
        return self.region_row + self.region_height

    @property
    def region_col_end(self) -> int:
        return self.region_col + self.region_width

    def final_row_after(self, grid_row: int) -> int:
        """Raster row up to which output is final once every tile of `grid_row` is blended."""
        if grid_row + 1 < len(self.row_starts):
            return self.row_starts[grid_row + 1]
        return self.region_row_end

    def tile(self, grid_row: int, grid_col: int) -> Tile:
        row, col = self.row_starts[grid_row], self.col_starts[grid_col]
        return Tile(
            index=grid_row * len(self.col_starts) + grid_col,
            grid_row=grid_row,
            grid_col=grid_col,
            row_off=row,
            col_off=col,
            size=self.size,
            place_row0=row,
            place_col0=col,
            place_row1=min(row + self.size, self.region_row_end),
            place_col1=min(col + self.size, self.region_col_end),
        )

    def __iter__(self) -> Iterator[Tile]:
        rows, cols = self.shape
        for r in range(rows):
            for c in range(cols):
                yield self.tile(r, c)


def weight_ramp(size: int, overlap: int, floor: float = WEIGHT_FLOOR) -> np.ndarray:
    """(size,) float32: 1 in the middle, a linear ramp over `overlap` px down to `floor`."""
    if overlap <= 0:
        return np.ones(size, np.float32)
    distance = np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5
    return np.clip(distance / overlap, floor, 1.0).astype(np.float32)


def weight_window(size: int, overlap: int, floor: float = WEIGHT_FLOOR) -> np.ndarray:
    """(size, size) float32: the outer product of two ramps.

    Blending divides by the summed weights, so any positive weights give a seamless result
    on constant input; the ramp makes neighbours cross-fade instead of meeting at a cut,
    and the floor above 0 lets pixels at the raster's border (seen by one tile) still count.
    """
    ramp = weight_ramp(size, overlap, floor)
    return np.outer(ramp, ramp)
