"""Blend overlapping tile logits into probabilities, one band of tile rows at a time.

Memory is one tile-high band of the region's width (4 bytes a pixel per prompt), whatever
the raster's height: when a row of tiles is complete, the rows no later tile touches are
turned into probabilities, written out in column chunks, and the band slides down.

Only weighted logit sums are kept. The summed weights need no array: the weight window is
an outer product and the tiles form a product grid, so the sum at (y, x) is R(y) · C(x).
(Tiles that skip the model hold no valid pixel, so every valid pixel has all its tiles.)
Invalid pixels carry NaN through the sums and come out as probability 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rasterio.windows import Window

from saymap.engine.tiling import Tile, TileGrid, weight_ramp

CHUNK_COLUMNS = 2048  # columns turned into probabilities at a time (a multiple of the
# output's 512 px block width, so chunks fill whole blocks); bounds the temporaries
Writer = Callable[[Window, np.ndarray], None]  # (window in the region, (P, h, w) float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function (tanh form)."""
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


def _axis_sums(starts: list[int], origin: int, length: int, ramp: np.ndarray) -> np.ndarray:
    """Per position along one axis: the sum of the 1-D ramps of every tile covering it."""
    total = np.zeros(length + len(ramp), np.float32)
    for start in starts:
        offset = start - origin
        total[offset : offset + len(ramp)] += ramp
    return total[:length]


class RowBandBlender:
    """Accumulates weighted logits for `channels` prompts over a sliding band of rows."""

    def __init__(self, grid: TileGrid, channels: int) -> None:
        self.grid = grid
        self.channels = channels
        ramp = weight_ramp(grid.size, grid.overlap)  # the weight window is outer(ramp, ramp)
        self._ramp = ramp
        self._row_sums = _axis_sums(grid.row_starts, grid.region_row, grid.region_height, ramp)
        self._col_sums = _axis_sums(grid.col_starts, grid.region_col, grid.region_width, ramp)
        self._sum = np.zeros((channels, grid.size, grid.region_width), np.float32)
        self.top = grid.region_row  # raster row held in band row 0
        self.grid_row = 0  # the tile row being accumulated

    def _slices(self, tile: Tile) -> tuple[tuple[slice, slice], slice, slice]:
        if tile.grid_row != self.grid_row:
            raise ValueError(f"tile row {tile.grid_row} arrived while blending row {self.grid_row}")
        band_rows = slice(tile.place_row0 - self.top, tile.place_row1 - self.top)
        band_cols = slice(
            tile.place_col0 - self.grid.region_col, tile.place_col1 - self.grid.region_col
        )
        return tile.placement_in_tile(), band_rows, band_cols

    def add(self, tile: Tile, logits: np.ndarray, valid: np.ndarray) -> None:
        """logits (channels, S, S) and valid (S, S) of one tile, in tile order."""
        (rows, cols), band_rows, band_cols = self._slices(tile)
        weighted = np.outer(self._ramp[rows], self._ramp[cols]) * logits[:, rows, cols]
        weighted[:, ~valid[rows, cols]] = np.nan
        self._sum[:, band_rows, band_cols] += weighted

    def skip(self, tile: Tile) -> None:
        """A tile with no valid pixel: its area is invalid (the model did not run on it)."""
        _, band_rows, band_cols = self._slices(tile)
        self._sum[:, band_rows, band_cols] = np.nan

    def finish_row(self, write: Writer) -> None:
        """Close the current tile row: hand its final rows to `write` in column chunks.

        Invalid pixels (nodata, fill, outside the AOI, skipped tiles) get probability 0.
        """
        end = self.grid.final_row_after(self.grid_row)
        count = end - self.top
        first = self.top - self.grid.region_row
        row_sums = self._row_sums[first : first + count, None]
        width = self.grid.region_width
        for col0 in range(0, width, CHUNK_COLUMNS):
            col1 = min(col0 + CHUNK_COLUMNS, width)
            sums = self._sum[:, :count, col0:col1]
            probabilities = sigmoid(sums / (row_sums * self._col_sums[None, col0:col1]))
            probabilities[np.isnan(probabilities)] = 0.0
            write(Window(col0, first, col1 - col0, count), probabilities)
        kept = self.grid.size - count
        self._sum[:, :kept] = self._sum[:, count:]
        self._sum[:, kept:] = 0.0
        self.top = end
        self.grid_row += 1
