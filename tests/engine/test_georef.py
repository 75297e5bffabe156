"""Georeferencing: a known bright box goes through the whole pipeline (window reads, tiles,
batches, blending, the probability GeoTIFF, vectorisation, the GeoPackage) and must come
back at the right map coordinates, with a true area in m², on a generated raster in each
CRS family (runs everywhere) and on each real sample of ../shared (skips where it is absent).
"""

from __future__ import annotations

from dataclasses import dataclass
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
from tests.engine.painting import Box, box_in_map, equal_area_m2, paint_copy, pixel_size
from tests.engine.twins import GENERATED, REAL, SIDES, real_case, side_of

# row0, row1, col0, col1: crosses the tile border (tiles of 256 px step by 224) both ways.
BOX = (180, 300, 100, 400)

# (side, grid or sample file, box to paint, CRS it must keep: None for the custom Albers
# with no EPSG code, tiles of 256 px stepping by 224). Every box crosses a tile border,
# so seams are exercised on every grid.
GENERATED_CASES = [
    pytest.param(
        GENERATED,
        grid,
        BOX,
        None if grid == "custom_wkt" else GRIDS[grid][0],
        9,
        id=f"{GENERATED}-{grid}",
    )
    for grid in sorted(GRIDS)
]
REAL_SAMPLES = {
    "kampala": ("kampala/kampala_west_rgb.tif", (900, 1100, 200, 700), "EPSG:3857", 81),
    "oam_manila": (
        "oam_manila/5b90f92da0d7280005fab355_4310.tif", (1500, 1700, 1400, 1900), "EPSG:3395", 81
    ),
    "spacenet_vegas_roads": (
        "spacenet_vegas_roads/road_mask_input.tif", (500, 750, 400, 700), "EPSG:4326", 36
    ),
    "nl_gorinchem": ("nl_gorinchem/test_tiled.tif", (300, 400, 200, 700), "EPSG:28992", 25),
    "neon_osbs": ("neon_osbs/OSBS_029.tif", (20, 100, 150, 300), "EPSG:32617", 4),
    "spacenet_custom_proj": (
        "spacenet_custom_proj/sample_geotiff_custom_proj.tif", (200, 300, 180, 280), None, 9
    ),
}  # fmt: skip
REAL_CASES = [real_case(REAL, *case, id=sample) for sample, case in REAL_SAMPLES.items()]


@pytest.mark.parametrize(("side", "name", "box", "crs", "tiles"), GENERATED_CASES + REAL_CASES)
def test_box_lands_on_the_map_where_it_was_painted(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    side: str,
    name: str,
    box: Box,
    crs: str | None,
    tiles: int,
) -> None:
    if side == REAL:
        source = request.getfixturevalue("real_data") / name
    else:
        source = rgb(tmp_path / "source.tif", name, size=512)
    painted = tmp_path / "painted.tif"
    profile = paint_copy(source, painted, [box])
    crs_wkt = profile["crs"].to_wkt()
    if crs is None:  # the custom Albers: no EPSG code anywhere, the WKT must survive
        assert profile["crs"].to_epsg() is None
    else:
        assert CRS.from_wkt(crs_wkt) == CRS.from_user_input(crs)

    output = tmp_path / "out.gpkg"
    result = segment_raster(
        painted,
        ["bright box"],
        output,
        model=BrightnessSegmenter(),
        options=SegmentOptions(tile=256, overlap=32, batch_size=3, device="cpu"),
    )
    assert result.n_features == 1 and result.tiles == tiles

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


@dataclass(frozen=True)
class Planar:
    """A raster where planar m² are wrong, with a box on it."""

    mercator: tuple[Path, Box]  # EPSG:3395 at Manila's 14.6° N
    lonlat: tuple[Path, Box]  # EPSG:4326


def sample(data: Path, name: str) -> tuple[Path, Box]:
    """The real sample `name`'s file and its box."""
    file, box, _, _ = REAL_SAMPLES[name]
    return data / file, box


@pytest.fixture(params=SIDES)
def planar(request: pytest.FixtureRequest) -> Planar:
    return side_of(
        request,
        lambda folder: Planar(
            (with_black_fill(folder / "manila.tif"), BOX),
            (rgb(folder / "lonlat.tif", "lonlat"), BOX),
        ),
        lambda data: Planar(sample(data, "oam_manila"), sample(data, "spacenet_vegas_roads")),
    )


def test_planar_area_would_be_wrong_where_it_matters(planar: Planar) -> None:
    """The area oracle is not vacuous: in EPSG:3395 at 14.6° N planar m² are ~7 % too large
    and in EPSG:4326 they are square degrees, so only a true area passes above."""
    path, pixels = planar.mercator
    with rasterio.open(path) as ds:
        box = box_in_map(ds.transform, pixels)
        assert 1.05 < box.area / equal_area_m2(box, ds.crs.to_wkt()) < 1.1
    path, pixels = planar.lonlat
    with rasterio.open(path) as ds:
        box = box_in_map(ds.transform, pixels)
        assert box.area / equal_area_m2(box, ds.crs.to_wkt()) < 1e-9
