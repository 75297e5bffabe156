"""Blend overlapping tile logits into probabilities, one band of tile rows at a time.

Memory is one tile-height band of the region's width (per prompt), whatever the raster's
height: when a row of tiles is complete, the rows no later tile touches are turned into
probabilities, handed out for writing, and the band slides down.
"""

from __future__ import annotations

import numpy as np

from saymap.engine.tiling import Tile, TileGrid, weight_window


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function (tanh form)."""
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


class RowBandBlender:
    """Accumulates weighted logits for `channels` prompts over a sliding band of rows."""

    def __init__(self, grid: TileGrid, channels: int) -> None:
        self.grid = grid
        self.channels = channels
        self.weights = weight_window(grid.size, grid.overlap)
        shape = (grid.size, grid.region_width)
        self._sum = np.zeros((channels, *shape), np.float32)
        self._weight = np.zeros(shape, np.float32)
        self._valid = np.zeros(shape, bool)
        self.top = grid.region_row  # raster row held in band row 0
        self.grid_row = 0  # the tile row being accumulated

    def add(self, tile: Tile, logits: np.ndarray, valid: np.ndarray) -> None:
        """logits (channels, S, S) and valid (S, S) of one tile, in tile order."""
        if tile.grid_row != self.grid_row:
            raise ValueError(f"tile row {tile.grid_row} arrived while blending row {self.grid_row}")
        rows, cols = tile.placement_in_tile()
        band_rows = slice(tile.place_row0 - self.top, tile.place_row1 - self.top)
        band_cols = slice(
            tile.place_col0 - self.grid.region_col, tile.place_col1 - self.grid.region_col
        )
        weight = self.weights[rows, cols]
        self._sum[:, band_rows, band_cols] += weight * logits[:, rows, cols]
        self._weight[band_rows, band_cols] += weight
        self._valid[band_rows, band_cols] |= valid[rows, cols]

    def finish_row(self) -> tuple[int, np.ndarray]:
        """Close the current tile row: (first raster row, (channels, n, W) probabilities).

        Pixels that are invalid (nodata, fill, outside the AOI, or seen by no tile) get 0.
        """
        end = self.grid.final_row_after(self.grid_row)
        count = end - self.top
        weight = self._weight[:count]
        logits = self._sum[:, :count] / np.maximum(weight, 1e-12)
        probabilities = sigmoid(logits)
        probabilities[:, ~(self._valid[:count] & (weight > 0))] = 0.0
        first = self.top
        self._slide(count)
        self.top = end
        self.grid_row += 1
        return first, probabilities

    def _slide(self, count: int) -> None:
        for array in (self._sum[:], self._weight, self._valid):
            rows_axis = array.ndim - 2
            kept = array.shape[rows_axis] - count
            if rows_axis == 0:
                array[:kept] = array[count:]
                array[kept:] = 0
            else:
                array[:, :kept] = array[:, count:]
                array[:, kept:] = 0
