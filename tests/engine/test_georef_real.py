"""Georeferencing on the real rasters (the second layer of test_georef.py): a known bright
box goes through the whole pipeline (window reads, tiles, batches, blending, the probability
GeoTIFF, vectorisation, the GeoPackage) and must come back at the right map coordinates,
with a true area in m².

This is a real pipeline test, not a mock: the segmenter is a deterministic nn.Module whose
logits are high exactly where pixels are bright, so the right answer is known in advance.
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
from tests.conftest import skip_module_without_real_data
from tests.engine.brightness import BrightnessSegmenter
from tests.engine.painting import box_in_map, equal_area_m2, paint_copy, pixel_size

skip_module_without_real_data("georeferencing on real rasters (test_georef.py runs everywhere)")

# (sample, file, box to paint: row0, row1, col0, col1). Every box crosses a tile border
# (tiles of 256 px step by 224) so seams are exercised on real grids too.
CASES = [
    ("kampala", "kampala_west_rgb.tif", (900, 1100, 200, 700), "EPSG:3857"),
    ("oam_manila", "5b90f92da0d7280005fab355_4310.tif", (1500, 1700, 1400, 1900), "EPSG:3395"),
    ("spacenet_vegas_roads", "road_mask_input.tif", (500, 750, 400, 700), "EPSG:4326"),
    ("nl_gorinchem", "test_tiled.tif", (300, 400, 200, 700), "EPSG:28992"),
    ("neon_osbs", "OSBS_029.tif", (20, 100, 150, 300), "EPSG:32617"),
    ("spacenet_custom_proj", "sample_geotiff_custom_proj.tif", (200, 300, 180, 280), None),
]


@pytest.mark.real_data
@pytest.mark.parametrize(("sample", "name", "box", "epsg"), CASES, ids=[c[0] for c in CASES])
def test_box_lands_on_the_map_where_it_was_painted(
    real_data: Path, tmp_path: Path, sample: str, name: str, box: tuple, epsg: str | None
) -> None:
    source = real_data / sample / name
    painted = tmp_path / "painted.tif"
    profile = paint_copy(source, painted, [box])
    crs_wkt = profile["crs"].to_wkt()
    if epsg is None:  # the custom Albers: no EPSG code anywhere, the WKT must survive
        assert profile["crs"].to_epsg() is None
    else:
        assert CRS.from_wkt(crs_wkt) == CRS.from_user_input(epsg)

    output = tmp_path / "out.gpkg"
    result = segment_raster(
        painted,
        ["bright box"],
        output,
        model=BrightnessSegmenter(),
        options=SegmentOptions(tile=256, overlap=32, batch_size=3, device="cpu"),
    )
    assert result.n_features == 1

    info = pyogrio.read_info(output, layer="saymap")
    assert CRS.from_user_input(info["crs"]) == CRS.from_wkt(crs_wkt)
    meta, _, wkb, fields = pyogrio.raw.read(output, layer="saymap")
    values = dict(zip(meta["fields"], fields, strict=True))
    (found,) = shapely.from_wkb(wkb)

    expected = box_in_map(profile["transform"], box)
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


@pytest.mark.real_data
def test_planar_area_would_be_wrong_where_it_matters(real_data: Path) -> None:
    """The area oracle is not vacuous: in EPSG:3395 at Manila (14.6° N) planar m² are ~7 %
    too large and in EPSG:4326 they are square degrees, so only a true area passes above."""
    with rasterio.open(real_data / "oam_manila" / "5b90f92da0d7280005fab355_4310.tif") as ds:
        box = box_in_map(ds.transform, (1500, 1700, 1400, 1900))
        wkt = ds.crs.to_wkt()
    assert box.area / equal_area_m2(box, wkt) > 1.05
