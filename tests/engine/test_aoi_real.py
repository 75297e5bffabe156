"""Areas of interest on the real samples (the second layer of test_aoi_generated.py): formats,
CRSs (EPSG, lon/lat, custom WKT), clipping and masking."""

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
from tests.conftest import skip_module_without_real_data

skip_module_without_real_data(
    "areas of interest on real samples (test_aoi_generated.py runs everywhere)"
)
pytestmark = pytest.mark.real_data

GORINCHEM = ("nl_gorinchem", "test_tiled.tif")  # EPSG:28992, 1000 px at 0.25 m
CUSTOM = ("spacenet_custom_proj", "sample_geotiff_custom_proj.tif")  # Albers, no EPSG


def _spec(real_data: Path, sample: tuple[str, str]) -> RasterSpec:
    return open_raster(real_data.joinpath(*sample))


def test_bounds_in_the_raster_crs(real_data: Path) -> None:
    spec = _spec(real_data, GORINCHEM)  # origin 127375, 428250; 0.25 m pixels
    aoi = parse_aoi("127400,428150,127450,428200")
    assert aoi.crs is None
    region = resolve_region(spec, aoi)
    assert region.window == Window(100, 200, 200, 200)
    assert region.polygon_px is None  # aligned to pixels: the window is the whole story


def test_bounds_in_lonlat_are_reprojected(real_data: Path) -> None:
    spec = _spec(real_data, GORINCHEM)
    to_lonlat = Transformer.from_crs("EPSG:28992", "EPSG:4326", always_xy=True)
    (west, east), (south, north) = to_lonlat.transform([127400, 127450], [428150, 428200])
    region = resolve_region(spec, parse_aoi(f"{west},{south},{east},{north}@EPSG:4326"))
    # A lon/lat box is a slightly rotated quadrilateral in RD New: same place, within 2 px.
    assert abs(region.window.col_off - 100) <= 2 and abs(region.window.row_off - 200) <= 2
    assert abs(region.window.width - 200) <= 4 and abs(region.window.height - 200) <= 4
    assert region.polygon_px is not None  # and its pixels outside the quad are masked


def test_aoi_is_clipped_to_the_raster(real_data: Path) -> None:
    spec = _spec(real_data, GORINCHEM)
    region = resolve_region(spec, parse_aoi("127300,428200,127400,428400"))
    assert region.window == Window(0, 0, 100, 200)


@pytest.mark.parametrize(
    "text", ["0,0,10,10", "127000,428000,127100,428100", "4.9,51.8,4.95,51.85@EPSG:4326"]
)
def test_aoi_outside_the_raster(real_data: Path, text: str) -> None:
    with pytest.raises(AOIError, match="does not overlap"):
        resolve_region(_spec(real_data, GORINCHEM), parse_aoi(text))


def test_polygon_aoi_masks_pixels_outside_it(real_data: Path) -> None:
    spec = _spec(real_data, GORINCHEM)
    triangle = "POLYGON ((127400 428200, 127450 428200, 127400 428150, 127400 428200))"
    region = resolve_region(spec, parse_aoi(triangle))
    assert region.window == Window(100, 200, 200, 200)
    mask = region_mask(region, region.window)
    assert mask.shape == (200, 200)
    assert mask[0, 0] and mask[0, 198] and mask[198, 0] and not mask[199, 199]
    assert mask.sum() == pytest.approx(200 * 200 / 2, rel=0.02)


def test_geojson_file_without_crs_is_not_assumed_lonlat(real_data: Path) -> None:
    """spacenet_custom_proj's labels are Albers metres in a GeoJSON with no crs member:
    taking them as lon/lat would be silently wrong, so the user must say the CRS."""
    labels = real_data / "spacenet_custom_proj" / "geotiff_custom_proj_labels.geojson"
    spec = _spec(real_data, CUSTOM)
    with pytest.raises(AOIError, match="not longitude/latitude"):
        resolve_region(spec, parse_aoi(str(labels)))
    custom_wkt = spec.crs.to_wkt()
    region = resolve_region(spec, parse_aoi(f"{labels}@{custom_wkt}"))
    assert region.window.width > 0 and region.polygon_px is not None


def test_gpkg_file_carries_its_crs(real_data: Path, tmp_path: Path) -> None:
    spec = _spec(real_data, GORINCHEM)
    to_lonlat = Transformer.from_crs("EPSG:28992", "EPSG:4326", always_xy=True)
    square = shapely.transform(
        box(127400, 428150, 127450, 428200).segmentize(1),
        lambda xy: np.column_stack(to_lonlat.transform(*xy.T)),
    )
    path = tmp_path / "aoi.gpkg"
    pyogrio.raw.write(
        path, geometry=shapely.to_wkb(np.array([square])), field_data=[], fields=[],
        crs="EPSG:4326", driver="GPKG", geometry_type="Polygon",
    )  # fmt: skip
    aoi = parse_aoi(str(path))
    assert aoi.crs is not None and "4326" in aoi.crs
    region = resolve_region(spec, aoi)
    assert abs(region.window.col_off - 100) <= 1 and abs(region.window.width - 200) <= 2


def test_geojson_text_and_wkt_with_crs(real_data: Path) -> None:
    spec = _spec(real_data, GORINCHEM)
    geojson = json.dumps(box(127400, 428150, 127450, 428200).__geo_interface__)
    region = resolve_region(spec, parse_aoi(f"{geojson}@EPSG:28992"))
    assert region.window == Window(100, 200, 200, 200)
    with pytest.raises(AOIError, match="not longitude/latitude"):
        resolve_region(spec, parse_aoi(geojson))  # GeoJSON default is lon/lat


def test_bad_aoi_crs(real_data: Path) -> None:
    with pytest.raises(CRSError):
        resolve_region(_spec(real_data, GORINCHEM), AOI(box(0, 0, 1, 1), "EPSG:999999"))
