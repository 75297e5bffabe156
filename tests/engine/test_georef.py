"""Georeferencing on generated rasters in each CRS family (no ../shared): a known bright box
goes through the whole pipeline (window reads, tiles, batches, blending, the probability
GeoTIFF, vectorisation, the GeoPackage) and must come back at the right map coordinates,
with a true area in m². test_georef_real.py repeats this on the real samples.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyogrio
import pytest
import rasterio
import shapely
from pyproj import CRS

from saymap.engine.infer import SegmentOptions, segment_raster
from tests.engine.brightness import BrightnessSegmenter
from tests.engine.generated import GRIDS, rgb, with_black_fill
from tests.engine.painting import box_in_map, equal_area_m2, paint_copy, pixel_size

# row0, row1, col0, col1: crosses the tile border (tiles of 256 px step by 224) both ways.
BOX = (180, 300, 100, 400)


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_box_lands_on_the_map_where_it_was_painted(tmp_path: Path, grid: str) -> None:
    source = rgb(tmp_path / "source.tif", grid, size=512)
    painted = tmp_path / "painted.tif"
    profile = paint_copy(source, painted, [BOX])
    crs_wkt = profile["crs"].to_wkt()
    if grid == "custom_wkt":  # the custom Albers: no EPSG code anywhere, the WKT must survive
        assert profile["crs"].to_epsg() is None
    else:
        assert CRS.from_wkt(crs_wkt) == CRS.from_user_input(GRIDS[grid][0])

    output = tmp_path / "out.gpkg"
    result = segment_raster(
        painted,
        ["bright box"],
        output,
        model=BrightnessSegmenter(),
        options=SegmentOptions(tile=256, overlap=32, batch_size=3, device="cpu"),
    )
    assert result.n_features == 1 and result.tiles == 9

    info = pyogrio.read_info(output, layer="saymap")
    assert CRS.from_user_input(info["crs"]) == CRS.from_wkt(crs_wkt)
    meta, _, wkb, fields = pyogrio.raw.read(output, layer="saymap")
    values = dict(zip(meta["fields"], fields, strict=True))
    (found,) = shapely.from_wkb(wkb)

    expected = box_in_map(profile["transform"], BOX)
    tolerance = pixel_size(profile["transform"])
    assert shapely.hausdorff_distance(found, expected) <= tolerance
    assert abs(found.area - expected.area) <= expected.length * tolerance / 2

    true_area = equal_area_m2(expected, crs_wkt)
    assert values["area_m2"][0] == pytest.approx(true_area, rel=0.01)
    assert values["prompt"][0] == "bright box"
    assert values["model"][0] == "brightness"
    assert values["score"][0] > 0.99
    assert values["source"][0] == str(painted.resolve())
    assert values["run_id"][0] == result.run_id
    created = datetime.fromisoformat(values["created_at"][0].replace("Z", "+00:00"))
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0


def test_planar_area_would_be_wrong_where_it_matters(tmp_path: Path) -> None:
    """The area oracle is not vacuous: in EPSG:3395 at 14.6° N planar m² are ~7 % too large
    and in EPSG:4326 they are square degrees, so only a true area passes above."""
    with rasterio.open(with_black_fill(tmp_path / "manila.tif")) as ds:
        box = box_in_map(ds.transform, BOX)
        wkt = ds.crs.to_wkt()
    assert 1.05 < box.area / equal_area_m2(box, wkt) < 1.1
    with rasterio.open(rgb(tmp_path / "lonlat.tif", "lonlat")) as ds:
        box = box_in_map(ds.transform, BOX)
        assert box.area / equal_area_m2(box, ds.crs.to_wkt()) < 1e-9
