"""Tile grids, the weight window, and blending: full-size tiles, full coverage, no seams."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from saymap.engine.blend import RowBandBlender, sigmoid
from saymap.engine.errors import OptionError
from saymap.engine.infer import SegmentOptions, segment_raster
from saymap.engine.tiling import WEIGHT_FLOOR, Tile, TileGrid, weight_window
from tests.engine.brightness import BrightnessSegmenter


@pytest.mark.parametrize(
    ("height", "width", "size", "overlap"),
    [(1000, 1000, 256, 32), (100, 70, 256, 64), (257, 513, 256, 0), (2000, 300, 512, 128)],
)
def test_grid_covers_the_region_with_full_size_tiles(
    height: int, width: int, size: int, overlap: int
) -> None:
    grid = TileGrid.over(Window(5, 7, width, height), size, overlap)
    covered = np.zeros((height, width), int)
    for tile in grid:
        assert tile.window.height == tile.window.width == size  # padded, never shrunk
        rows, cols = tile.placement_in_tile()
        place = tile.placement
        assert place.row_off >= 7 and place.col_off >= 5
        assert place.row_off + place.height <= 7 + height
        assert rows.stop - rows.start == place.height and cols.stop - cols.start == place.width
        covered[
            place.row_off - 7 : place.row_off - 7 + place.height,
            place.col_off - 5 : place.col_off - 5 + place.width,
        ] += 1
    assert covered.min() >= 1
    rows, cols = grid.shape
    assert len(list(grid)) == len(grid) == rows * cols
    # As few tiles as the stride allows: one fewer per axis would leave a gap.
    assert grid.row_starts[-1] < 7 + height <= grid.row_starts[-1] + size
    if rows > 1:
        assert grid.row_starts[-2] + size < 7 + height


def test_tile_is_immutable() -> None:
    tile = next(iter(TileGrid.over(Window(0, 0, 10, 10), 32, 0)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        tile.row_off = 3  # type: ignore[misc]


@pytest.mark.parametrize(("size", "overlap"), [(256, 256), (256, -1), (0, 0)])
def test_bad_overlap_or_size(size: int, overlap: int) -> None:
    with pytest.raises(OptionError):
        TileGrid.over(Window(0, 0, 100, 100), size, overlap)


def test_weight_window_ramps_to_a_floor_above_zero() -> None:
    weights = weight_window(64, 16)
    assert weights.shape == (64, 64)
    assert weights.min() == pytest.approx(WEIGHT_FLOOR**2) and weights.min() > 0
    assert weights[16:48, 16:48].min() == 1.0
    assert np.allclose(weights, weights.T) and np.allclose(weights, weights[::-1, ::-1])
    assert np.all(np.diff(weights[32, :32]) >= 0)  # rises towards the middle


def _blend(grid: TileGrid, logits_for: Callable[[Tile], np.ndarray]) -> np.ndarray:
    blender = RowBandBlender(grid, channels=1)
    out = np.full((1, grid.region_height, grid.region_width), -1.0, np.float32)

    def write(window: Window, probabilities: np.ndarray) -> None:
        rows, cols = window.toslices()
        assert (out[:, rows, cols] == -1).all()  # every pixel written exactly once
        out[:, rows, cols] = probabilities

    for tile in grid:
        while tile.grid_row > blender.grid_row:
            blender.finish_row(write)
        blender.add(tile, logits_for(tile), np.ones((grid.size, grid.size), bool))
    while blender.grid_row < grid.shape[0]:
        blender.finish_row(write)
    assert (out >= 0).all()
    return out[0]


def test_constant_logits_blend_to_a_constant() -> None:
    grid = TileGrid.over(Window(0, 0, 333, 290), 64, 24)
    out = _blend(grid, lambda tile: np.full((1, 64, 64), 0.7, np.float32))
    assert out.shape == (290, 333)
    assert np.ptp(out) < 1e-6  # float32 rounding of the weighted mean, nothing more
    assert out[0, 0] == pytest.approx(float(sigmoid(np.float32(0.7))))


def test_neighbouring_tiles_cross_fade_instead_of_meeting_at_a_cut() -> None:
    """Tiles that disagree (each a different constant) must meet through a ramp: the jump
    between adjacent pixels is a fraction of the disagreement, not all of it."""
    grid = TileGrid.over(Window(0, 0, 300, 300), 64, 32)
    values = np.random.default_rng(0).normal(0, 2, size=grid.shape).astype(np.float32)
    logits = _blend(grid, lambda t: np.full((1, 64, 64), values[t.grid_row, t.grid_col]))
    logit_map = np.log(logits / (1 - logits))
    largest_jump = max(np.abs(np.diff(logit_map, axis=a)).max() for a in (0, 1))
    largest_disagreement = np.abs(np.diff(values, axis=0)).max()
    assert largest_jump < largest_disagreement / 4


def test_blender_memory_is_one_band_of_tile_rows() -> None:
    grid = TileGrid.over(Window(0, 0, 1000, 50_000), 128, 16)
    blender = RowBandBlender(grid, channels=2)
    assert blender._sum.nbytes == 2 * 128 * 1000 * 4  # independent of the 50,000 rows


def test_invalid_pixels_and_skipped_tiles_blend_to_zero() -> None:
    grid = TileGrid.over(Window(0, 0, 100, 100), 64, 16)
    blender = RowBandBlender(grid, channels=1)
    out = np.zeros((100, 100), np.float32)

    def write(window: Window, probabilities: np.ndarray) -> None:
        out[window.toslices()] = probabilities[0]

    valid = np.ones((64, 64), bool)
    valid[:10, :10] = False  # the top-left corner of the raster is nodata
    for tile in grid:
        while tile.grid_row > blender.grid_row:
            blender.finish_row(write)
        if tile.grid_row == 1 and tile.grid_col == 1:
            blender.skip(tile)  # as if all its pixels were fill
        else:
            blender.add(tile, np.full((1, 64, 64), 3.0, np.float32), valid)
    while blender.grid_row < grid.shape[0]:
        blender.finish_row(write)
    assert (out[:10, :10] == 0).all()
    first = grid.tile(1, 1)
    assert (out[first.place_row0 :, first.place_col0 :] == 0).all()
    assert np.allclose(out[10:40, 10:40], sigmoid(np.float32(3.0)))


def test_constant_raster_has_no_tile_pattern_through_the_pipeline(tmp_path: Path) -> None:
    """A real GeoTIFF of one grey value, through the real pipeline: the probability GeoTIFF
    it streams must be one value everywhere (no seams, no edge effect at the borders)."""
    raster = tmp_path / "grey.tif"
    with rasterio.open(
        raster, "w", driver="GTiff", width=700, height=500, count=3, dtype="uint8",
        crs="EPSG:32633", transform=Affine(1, 0, 400000, 0, -1, 5000000),
    ) as dst:  # fmt: skip
        dst.write(np.full((3, 500, 700), 190, np.uint8))
    probabilities = tmp_path / "p.tif"
    segment_raster(
        raster, ["grey"], tmp_path / "out.gpkg", model=BrightnessSegmenter(),
        options=SegmentOptions(tile=128, overlap=48, device="cpu",
                               probabilities_path=str(probabilities)),
    )  # fmt: skip
    with rasterio.open(probabilities) as ds:
        values = ds.read(1)
        assert ds.transform == Affine(1, 0, 400000, 0, -1, 5000000)
    assert values.shape == (500, 700)
    expected = float(sigmoid(np.float32((190 / 255 - 0.8) * 40)))
    assert np.allclose(values, expected, atol=1e-6)
    assert np.ptp(values) < 1e-6
