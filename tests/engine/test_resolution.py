"""Working resolution: rasters are segmented on the model card's ground grid, whatever their
own resolution, and polygons come back in the raster's CRS.

Generated GeoTIFFs (no ../shared needed) and the deterministic BrightnessSegmenter, so each
expected answer is known in advance; the pipeline itself (reader, tiles, blend, polygons)
is the real one.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS

from saymap.engine.errors import OptionError
from saymap.engine.infer import SegmentOptions, segment_raster
from saymap.engine.raster import open_raster
from saymap.engine.resolution import ground_resolution_m, parse_gsd, working_spec
from saymap.engine.tiling import TileGrid
from tests.engine.brightness import BrightnessSegmenter

# A 96 m x 96 m scene, origin in UTM 33N, with bright "roofs" at arbitrary (not grid-aligned)
# places; sizes in metres.
ORIGIN = (500_000.0, 5_000_000.0)
SIDE_M = 96.0
ROOFS_M = [(10.3, 12.1, 22.7, 20.9), (40.0, 55.2, 52.6, 61.0), (70.45, 8.2, 88.1, 30.35)]


def scene(path: Path, gsd: float) -> Path:
    """Write the scene at `gsd` metres per pixel (RGB uint8, EPSG:32633)."""
    n = round(SIDE_M / gsd)
    centres = (np.arange(n) + 0.5) * gsd
    x, y = np.meshgrid(centres, centres)  # y measured down from the top edge
    bright = np.zeros((n, n), bool)
    for x0, y0, x1, y1 in ROOFS_M:
        bright |= (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    data = np.where(bright, 240, 60).astype(np.uint8)
    with rasterio.open(
        path, "w", driver="GTiff", width=n, height=n, count=3, dtype="uint8",
        crs="EPSG:32633", transform=Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1] + SIDE_M),
        tiled=True, blockxsize=256, blockysize=256,
    ) as dst:  # fmt: skip
        dst.write(np.stack([data] * 3))
    return path


def segmenter(gsd_m: float | None) -> BrightnessSegmenter:
    model = BrightnessSegmenter()
    model.card = {"gsd_m": gsd_m, "gsd_range_m": [0.03, 0.6]} if gsd_m else {}
    return model


def polygons(path: Path) -> shapely.Geometry:
    frame = pyogrio.read_dataframe(path)
    return shapely.union_all(list(frame.geometry))


def test_the_same_scene_at_two_resolutions_gives_the_same_polygons(tmp_path: Path) -> None:
    fine = scene(tmp_path / "fine.tif", 0.075)
    coarse = scene(tmp_path / "coarse.tif", 0.3)
    options = SegmentOptions(tile=128, overlap=32, device="cpu", simplify_px=0.0)
    a = segment_raster(fine, ["roof"], tmp_path / "a.gpkg", model=segmenter(0.3), options=options)
    b = segment_raster(coarse, ["roof"], tmp_path / "b.gpkg", model=segmenter(0.3), options=options)
    assert a.working_gsd_m == pytest.approx(0.3, rel=1e-3)
    assert a.native_gsd_m == pytest.approx(0.075, rel=1e-2)
    assert a.tiles == b.tiles  # the same working grid, so the same tiles
    found_a, found_b = polygons(tmp_path / "a.gpkg"), polygons(tmp_path / "b.gpkg")
    assert a.n_features == b.n_features == len(ROOFS_M)
    # In map units (the raster's CRS), within one working pixel (a corner may move to the
    # diagonal neighbour) of each other ...
    pixel = 0.3 * math.sqrt(2) + 1e-6
    assert shapely.hausdorff_distance(found_a, found_b) <= pixel
    # ... and of the painted roofs.
    truth = shapely.union_all(
        [
            shapely.box(
                ORIGIN[0] + x0, ORIGIN[1] + SIDE_M - y1, ORIGIN[0] + x1, ORIGIN[1] + SIDE_M - y0
            )
            for x0, y0, x1, y1 in ROOFS_M
        ]
    )
    assert shapely.hausdorff_distance(found_a, truth) <= pixel


def test_native_keeps_the_raster_grid_and_auto_follows_the_card(tmp_path: Path) -> None:
    fine = scene(tmp_path / "fine.tif", 0.075)
    spec = open_raster(fine)
    native, how = working_spec(spec, "native", {"gsd_m": 0.3})
    assert native is spec and how.scale == 1.0
    working, how = working_spec(spec, "auto", {"gsd_m": 0.3})
    assert (working.width, working.height) == (320, 320) and how.scale == pytest.approx(4.0, 1e-3)
    assert working.transform.a == pytest.approx(0.3, rel=1e-3)
    assert working.native is not None and working.native.width == 1280
    metres, _ = working_spec(spec, 0.15, {"gsd_m": 0.3})  # --gsd 0.15 overrides the card
    assert metres.width == 640
    no_card, how = working_spec(spec, "auto", {})
    assert no_card is spec and "no gsd_m" in how.note


@pytest.mark.parametrize("bad", ["fine", "-1", "0", "nan", "inf"])
def test_gsd_values_a_person_can_fix(bad: str) -> None:
    with pytest.raises(OptionError, match="gsd"):
        parse_gsd(bad)


def test_geographic_raster_gets_ground_metres_per_pixel() -> None:
    """1e-5 degree pixels at 45° N: 0.7885 m east-west, 1.1113 m north-south (WGS84)."""
    transform = Affine(1e-5, 0, 12.0, 0, -1e-5, 45.0 + 500e-5)
    size = ground_resolution_m(CRS.from_epsg(4326), transform, 1000, 1000)
    assert size == pytest.approx(math.sqrt(0.78847 * 1.11132), rel=2e-3)


def test_web_mercator_map_metres_are_not_ground_metres() -> None:
    """EPSG:3857 stretches by 1/cos(latitude): at 60° N a 0.1 map-metre pixel is 0.05 m."""
    y60 = 8399737.89  # Web Mercator northing of 60° N
    transform = Affine(0.1, 0, 1_000_000.0, 0, -0.1, y60 + 50.0)
    size = ground_resolution_m(CRS.from_epsg(3857), transform, 1000, 1000)
    assert size == pytest.approx(0.05, rel=5e-3)


def test_progress_counts_working_resolution_tiles(tmp_path: Path) -> None:
    fine = scene(tmp_path / "fine.tif", 0.075)  # 1280 px native, 320 px at 0.3 m
    seen: list[tuple[int, int]] = []
    options = SegmentOptions(tile=128, overlap=32, device="cpu")
    result = segment_raster(
        fine, ["roof"], tmp_path / "p.gpkg", model=segmenter(0.3), options=options,
        progress=lambda done, total, _message: seen.append((done, total)),
    )  # fmt: skip
    working = TileGrid(0, 0, 320, 320, 128, 32)
    native = TileGrid(0, 0, 1280, 1280, 128, 32)
    assert result.tiles == len(working) < len(native)
    assert {total for _, total in seen} == {len(working)}
    assert seen[-1][0] == len(working)


def test_far_outside_the_card_range_warns_once(tmp_path: Path, caplog) -> None:
    coarse = scene(tmp_path / "coarse.tif", 3.0)  # 3 m pixels; the card is good to 0.6 m
    with caplog.at_level(logging.WARNING, logger="saymap"):
        result = segment_raster(
            coarse, ["roof"], tmp_path / "w.gpkg", model=segmenter(0.3),
            options=SegmentOptions(tile=128, overlap=32, device="cpu"),
        )  # fmt: skip
    messages = [w for w in result.warnings if "outside the" in w]
    assert len(messages) == 1 and "resampled it to 0.3 m" in messages[0]
    assert sum("outside the" in r.getMessage() for r in caplog.records) == 1
