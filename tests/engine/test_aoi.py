"""Areas of interest: bounds, polygons, files and GeoJSON, in the raster's CRS, in lon/lat
and in a custom WKT, clipping and masking; each check on a generated raster (runs
everywhere) and on the real sample it stands in for (tests/engine/twins.py), and a lon/lat
polygon in each CRS family on generated rasters."""

from __future__ import annotations

import json
from dataclasses import dataclass
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
from tests.engine.twins import SIDES, side_of

# nl_gorinchem and its look-alike: EPSG:28992 from 127375, 428250 in 0.25 m pixels (1000 px
# and 512 px).
BOX = (127400, 428150, 127450, 428200)  # columns 100..300, rows 200..400


@pytest.fixture(scope="module", params=SIDES)
def rd_new(request: pytest.FixtureRequest) -> RasterSpec:
    return side_of(
        request,
        lambda folder: open_raster(rgb(folder / "rd.tif", "rd_new")),
        lambda data: open_raster(data / "nl_gorinchem" / "test_tiled.tif"),
    )


@dataclass(frozen=True)
class Albers:
    """A raster in a custom Albers WKT with no EPSG code, and polygons in Albers metres in a
    GeoJSON file with no crs member (spacenet_custom_proj's labels, or one square)."""

    spec: RasterSpec
    labels: Path
    wkt: str  # the WKT the user gives for the labels
    window: Window  # the labels' pixels
    aligned: bool  # the labels are one pixel-aligned box: the window is the whole story


def generated_albers(folder: Path) -> Albers:
    spec = open_raster(int16_custom(folder / "custom.tif"))  # 30 m pixels, 256 px
    _, west, north, _ = GRIDS["custom_wkt"]
    area = box(west + 30 * 40, north - 30 * 140, west + 30 * 140, north - 30 * 40)
    labels = folder / "labels.geojson"
    feature = {"type": "Feature", "properties": {}, "geometry": area.__geo_interface__}
    labels.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return Albers(spec, labels, ALBERS_WKT, Window(40, 40, 100, 100), aligned=True)


def real_albers(data: Path) -> Albers:
    spec = open_raster(data / "spacenet_custom_proj" / "sample_geotiff_custom_proj.tif")
    labels = data / "spacenet_custom_proj" / "geotiff_custom_proj_labels.geojson"
    return Albers(spec, labels, spec.crs.to_wkt(), Window(335, 7, 177, 378), aligned=False)


@pytest.fixture(params=SIDES)
def albers(request: pytest.FixtureRequest) -> Albers:
    return side_of(request, generated_albers, real_albers)


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


def test_bounds_in_lonlat_are_reprojected(rd_new: RasterSpec) -> None:
    to_lonlat = Transformer.from_crs("EPSG:28992", "EPSG:4326", always_xy=True)
    (west, east), (south, north) = to_lonlat.transform([BOX[0], BOX[2]], [BOX[1], BOX[3]])
    region = resolve_region(rd_new, parse_aoi(f"{west},{south},{east},{north}@EPSG:4326"))
    # A lon/lat box is a slightly rotated quadrilateral in RD New: same place, within 2 px.
    assert abs(region.window.col_off - 100) <= 2 and abs(region.window.row_off - 200) <= 2
    assert abs(region.window.width - 200) <= 4 and abs(region.window.height - 200) <= 4
    assert region.polygon_px is not None  # and its pixels outside the quad are masked


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


def test_geojson_file_without_crs_is_not_assumed_lonlat(albers: Albers) -> None:
    """Albers metres in a GeoJSON with no crs member: taking them as lon/lat would be
    silently wrong, so the user must say the CRS, here a WKT with no EPSG code."""
    with pytest.raises(AOIError, match="not longitude/latitude"):
        resolve_region(albers.spec, parse_aoi(str(albers.labels)))
    region = resolve_region(albers.spec, parse_aoi(f"{albers.labels}@{albers.wkt}"))
    assert region.window == albers.window
    assert (region.polygon_px is None) == albers.aligned


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
