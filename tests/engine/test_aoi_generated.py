"""Areas of interest on generated GeoTIFFs (no ../shared): bounds, polygons, files and
GeoJSON, in the raster's CRS, in lon/lat and in a custom WKT, clipping and masking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import Transformer
from rasterio.windows import Window
from shapely.geometry import box

from saymap.engine.aoi import AOI, parse_aoi, region_mask, resolve_region
from saymap.engine.errors import AOIError, CRSError
from saymap.engine.raster import RasterSpec, open_raster
from tests.engine.generated import ALBERS_WKT, GRIDS, int16_custom, rgb

# rd_new: EPSG:28992, origin 127375, 428250, 0.25 m pixels, 512 px (to 127503, 428122).
BOX = (127400, 428150, 127450, 428200)  # columns 100..300, rows 200..400


@pytest.fixture
def rd_new(tmp_path: Path) -> RasterSpec:
    return open_raster(rgb(tmp_path / "rd.tif", "rd_new"))


def to_lonlat(crs: str, geometry: shapely.Geometry) -> shapely.Geometry:
    project = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return shapely.transform(
        geometry.segmentize(1), lambda xy: np.column_stack(project.transform(*xy.T))
    )


def test_bounds_in_the_raster_crs(rd_new: RasterSpec) -> None:
    aoi = parse_aoi(",".join(map(str, BOX)))
    assert aoi.crs is None
    region = resolve_region(rd_new, aoi)
    assert region.window == Window(100, 200, 200, 200)
    assert region.polygon_px is None  # aligned to pixels: the window is the whole story


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_a_lonlat_polygon_lands_where_it_is_in_each_crs(grid: str, tmp_path: Path) -> None:
    """The same place, given in lon/lat, resolves to the same pixels whatever the CRS."""
    spec = open_raster(rgb(tmp_path / f"{grid}.tif", grid, size=256))
    crs, west, north, pixel = GRIDS[grid]
    inner = box(west + 50 * pixel, north - 150 * pixel, west + 150 * pixel, north - 50 * pixel)
    region = resolve_region(spec, parse_aoi(f"{to_lonlat(crs, inner).wkt}@EPSG:4326"))
    window = region.window
    assert abs(window.col_off - 50) <= 1 and abs(window.row_off - 50) <= 1
    assert abs(window.width - 100) <= 2 and abs(window.height - 100) <= 2
    mask = region_mask(region, window)  # the pixels inside the place, whatever the CRS
    assert mask is None or mask.mean() > 0.95


def test_aoi_is_clipped_to_the_raster(rd_new: RasterSpec) -> None:
    region = resolve_region(rd_new, parse_aoi("127300,428200,127400,428400"))
    assert region.window == Window(0, 0, 100, 200)


@pytest.mark.parametrize(
    "text", ["0,0,10,10", "127000,428000,127100,428100", "4.9,51.8,4.95,51.85@EPSG:4326"]
)
def test_aoi_outside_the_raster(rd_new: RasterSpec, text: str) -> None:
    with pytest.raises(AOIError, match="does not overlap"):
        resolve_region(rd_new, parse_aoi(text))


def test_polygon_aoi_masks_pixels_outside_it(rd_new: RasterSpec) -> None:
    triangle = "POLYGON ((127400 428200, 127450 428200, 127400 428150, 127400 428200))"
    region = resolve_region(rd_new, parse_aoi(triangle))
    assert region.window == Window(100, 200, 200, 200)
    mask = region_mask(region, region.window)
    assert mask.shape == (200, 200)
    assert mask[0, 0] and mask[0, 198] and mask[198, 0] and not mask[199, 199]
    assert mask.sum() == pytest.approx(200 * 200 / 2, rel=0.02)


def test_geojson_file_without_crs_in_a_custom_wkt(tmp_path: Path) -> None:
    """Albers metres in a GeoJSON with no crs member: taking them as lon/lat would be
    silently wrong, so the user must say the CRS, here a WKT with no EPSG code."""
    spec = open_raster(int16_custom(tmp_path / "custom.tif"))  # 30 m pixels, 256 px
    _, west, north, _ = GRIDS["custom_wkt"]
    area = box(west + 30 * 40, north - 30 * 140, west + 30 * 140, north - 30 * 40)
    labels = tmp_path / "labels.geojson"
    feature = {"type": "Feature", "properties": {}, "geometry": area.__geo_interface__}
    labels.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    with pytest.raises(AOIError, match="not longitude/latitude"):
        resolve_region(spec, parse_aoi(str(labels)))
    region = resolve_region(spec, parse_aoi(f"{labels}@{ALBERS_WKT}"))
    assert region.window == Window(40, 40, 100, 100)


def test_gpkg_file_carries_its_crs(rd_new: RasterSpec, tmp_path: Path) -> None:
    square = to_lonlat("EPSG:28992", box(*BOX))
    path = tmp_path / "aoi.gpkg"
    pyogrio.raw.write(
        path, geometry=shapely.to_wkb(np.array([square])), field_data=[], fields=[],
        crs="EPSG:4326", driver="GPKG", geometry_type="Polygon",
    )  # fmt: skip
    aoi = parse_aoi(str(path))
    assert aoi.crs is not None and "4326" in aoi.crs
    region = resolve_region(rd_new, aoi)
    assert abs(region.window.col_off - 100) <= 1 and abs(region.window.width - 200) <= 2


def test_geojson_text_and_wkt_with_crs(rd_new: RasterSpec) -> None:
    geojson = json.dumps(box(*BOX).__geo_interface__)
    region = resolve_region(rd_new, parse_aoi(f"{geojson}@EPSG:28992"))
    assert region.window == Window(100, 200, 200, 200)
    with pytest.raises(AOIError, match="not longitude/latitude"):
        resolve_region(rd_new, parse_aoi(geojson))  # GeoJSON default is lon/lat


def test_bad_aoi_crs(rd_new: RasterSpec) -> None:
    with pytest.raises(CRSError):
        resolve_region(rd_new, AOI(box(0, 0, 1, 1), "EPSG:999999"))


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("", AOIError, "empty"),
        ("1,2,3", AOIError, "cannot read the AOI"),
        ("10,10,0,0", AOIError, "minx < maxx"),
        ("POINT (1 2)", AOIError, "no polygon"),
        ("missing/aoi.geojson", AOIError, "not found"),
    ],
)
def test_malformed_aoi(text: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        parse_aoi(text)
