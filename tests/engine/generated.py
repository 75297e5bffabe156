"""Small GeoTIFFs written by the tests, standing in for the real samples of ../shared.

Each look-alike keeps what the real-data tests rely on (CRS, pixel size, dtype, band
count, nodata, black fill) at a few hundred pixels, with seeded noise for pixels, so a
fresh clone runs the pipeline, raster and AOI tests without ../shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

# Albers Equal Area on WGS 84 with no EPSG code, as spacenet_custom_proj's raster has.
ALBERS_WKT = (
    'PROJCS["unnamed",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
    '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Albers_Conic_Equal_Area"],PARAMETER["latitude_of_center",23],'
    'PARAMETER["longitude_of_center",-96],PARAMETER["standard_parallel_1",29.5],'
    'PARAMETER["standard_parallel_2",45.5],PARAMETER["false_easting",0],'
    'PARAMETER["false_northing",0],UNIT["metre",1]]'
)

# name: (CRS, upper-left x, upper-left y, pixel size): one small raster in each CRS family
# the real-data tests use (local projected, UTM, World and web Mercator, lon/lat, custom WKT).
GRIDS: dict[str, tuple[str, float, float, float]] = {
    "rd_new": ("EPSG:28992", 127375.0, 428250.0, 0.25),  # nl_gorinchem
    "utm": ("EPSG:32617", 404211.9, 3285142.9, 0.1),  # neon_osbs
    "world_mercator": ("EPSG:3395", 13461000.0, 1630000.0, 0.3),  # oam_manila
    "web_mercator": ("EPSG:3857", 3630000.0, 35000.0, 0.3),  # Kampala in web Mercator
    "lonlat": ("EPSG:4326", 32.58, 0.32, 3e-6),  # Kampala in degrees
    "custom_wkt": (ALBERS_WKT, -673425.0, 2130165.0, 30.0),  # Albers, no EPSG code
}


def noise(bands: int, size: int, low: int = 40, high: int = 200, seed: int = 0) -> np.ndarray:
    """(bands, size, size) uint8 texture in [low, high): mid-grey, never fill or white."""
    return np.random.default_rng(seed).integers(low, high, (bands, size, size), dtype=np.uint8)


def write_raster(
    path: Path,
    data: np.ndarray,
    grid: str = "rd_new",
    *,
    nodata: float | None = None,
    crs: str | bool | None = True,
) -> Path:
    """`data` (bands, rows, cols) as a tiled, deflated GeoTIFF on one of GRIDS; crs=None
    writes no CRS (the grid kept), crs=True the grid's own."""
    grid_crs, west, north, pixel = GRIDS[grid]
    profile = dict(
        driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype.name, crs=grid_crs if crs is True else crs, nodata=nodata,
        transform=Affine(pixel, 0, west, 0, -pixel, north), tiled=True, blockxsize=256,
        blockysize=256, compress="deflate",
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def rgb(path: Path, grid: str = "rd_new", size: int = 512, seed: int = 0) -> Path:
    """An 8-bit RGB raster with no nodata, like nl_gorinchem."""
    return write_raster(path, noise(3, size, seed=seed), grid)


def with_white_nodata(path: Path, size: int = 400) -> Path:
    """Like neon_osbs: 8-bit RGB on UTM, nodata 255 on ~1 % scattered white pixels."""
    data = noise(3, size)
    holes = np.random.default_rng(1).random((size, size)) < 0.01
    data[:, holes] = 255
    return write_raster(path, data, "utm", nodata=255)


def with_black_fill(path: Path, size: int = 512) -> Path:
    """Like oam_manila: 8-bit RGB in World Mercator, no nodata flag, a black triangle of
    fill in the top-left corner (rows + cols < size / 2)."""
    data = noise(3, size)
    rows, cols = np.indices((size, size))
    data[:, rows + cols < size // 2] = 0
    return write_raster(path, data, "world_mercator")


def with_black_lake(path: Path, size: int = 512) -> Path:
    """Like a Dubai JPEG: 8-bit RGB, no nodata flag, a lake inside the image whose deep water
    the sensor clipped to exactly 0 (a disc of radius size / 5 at the centre)."""
    data = noise(3, size)
    rows, cols = np.indices((size, size))
    data[:, (rows - size // 2) ** 2 + (cols - size // 2) ** 2 < (size // 5) ** 2] = 0
    return write_raster(path, data, "world_mercator")


def int16_custom(path: Path, size: int = 256) -> Path:
    """Like spacenet_custom_proj: int16 RGB in a custom Albers WKT, nodata -9999 on a strip."""
    data = np.random.default_rng(2).integers(200, 3000, (3, size, size)).astype(np.int16)
    data[:, :, : size // 8] = -9999
    return write_raster(path, data, "custom_wkt", nodata=-9999)


def uint16_single(path: Path, size: int = 300) -> Path:
    """Like spacenet_atlanta: one uint16 band on UTM, nodata 0 in the first rows."""
    data = np.random.default_rng(3).integers(100, 2000, (1, size, size)).astype(np.uint16)
    data[:, : size // 10] = 0
    return write_raster(path, data, "utm", nodata=0)


def float64_four_bands(path: Path, size: int = 300) -> Path:
    """Like spacenet_rotterdam's ms1: four float64 bands of reflectance-like values."""
    data = np.random.default_rng(4).uniform(50, 900, (4, size, size))
    return write_raster(path, data, "utm")


def buildings(folder: Path, size: int = 2048, per_side: int = 8) -> tuple[Path, Path]:
    """Like kampala: 8-bit RGB in web Mercator with `per_side`² bright square buildings, and
    their outlines as GeoJSON (EPSG:3857 crs member; class 'building', instance_id from 1).
    Ids are spread so that 5 and 8 sit in the easternmost columns, as in the real labels,
    and the labels reach the east edge, so validation strips there hold whole chips."""
    folder.mkdir(parents=True, exist_ok=True)
    _, west, north, pixel = GRIDS["web_mercator"]
    data = noise(3, size, high=120)
    cell, features = size // per_side, []
    for i in range(1, per_side**2 + 1):
        row, col = (i - 1) // per_side, (3 * i + 7) % per_side  # 5 -> col 6, 8 -> col 7
        r0, c0 = row * cell + cell // 4, col * cell + cell // 2  # the east column at the edge
        data[:, r0 : r0 + cell // 2, c0 : c0 + cell // 2] = 230
        x0, x1 = west + c0 * pixel, west + (c0 + cell // 2) * pixel
        y0, y1 = north - (r0 + cell // 2) * pixel, north - r0 * pixel
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        features.append({
            "type": "Feature",
            "properties": {"class": "building", "instance_id": i, "clipped": False},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        })  # fmt: skip
    raster = write_raster(folder / "buildings_rgb.tif", data, "web_mercator")
    labels = folder / "buildings.geojson"
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}
    labels.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}))
    return raster, labels
