"""Paint known bright boxes into copies of real rasters, and compute where they must land.

The copies keep the source's grid, CRS (EPSG or custom WKT), nodata and dtype; only pixel
values change: valid pixels are dimmed into the lower half of the range and the boxes are
set to a bright value, so the brightness segmenter's answer is known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import Polygon

Box = tuple[int, int, int, int]  # row0, row1, col0, col1 (end exclusive), raster pixels

BRIGHT_16BIT = 4000


def paint_copy(
    source: Path, target: Path, boxes: list[Box], *, drop_crs: bool = False
) -> rasterio.profiles.Profile:
    """Write `target`: `source` dimmed, with `boxes` bright. Returns the profile written."""
    with rasterio.open(source) as src:
        data = src.read()
        profile = src.profile.copy()
        nodata = src.nodata
    invalid = np.all(data == 0, axis=0)
    if nodata is not None:
        invalid |= np.all(data == nodata, axis=0)
    if data.dtype == np.uint8:
        dimmed = data // 2
        bright = 250  # not 255: that is neon_osbs's nodata
    else:
        top = float(np.abs(data[:, ~invalid]).max())
        dimmed = (np.clip(data.astype(np.float64), 0, None) * (BRIGHT_16BIT / 2) / top).astype(
            data.dtype
        )
        bright = BRIGHT_16BIT
    out = np.where(invalid[None], data, dimmed)
    for row0, row1, col0, col1 in boxes:
        out[:, row0:row1, col0:col1] = bright
    profile.update(driver="GTiff", compress="deflate", tiled=True, blockxsize=256, blockysize=256)
    for key in ("photometric", "jpeg_quality", "interleave"):
        profile.pop(key, None)
    if drop_crs:
        profile["crs"] = None
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(out)
    return profile


def without_crs(source: Path, target: Path) -> Path:
    """Write `target`: `source` with its CRS removed (grid, pixels and nodata kept), the
    raster a user gets from a tool that drops georeferencing metadata."""
    with rasterio.open(source) as src:
        profile, data = src.profile, src.read()
    profile.update(crs=None)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
    return target


def box_in_map(transform: Affine, box: Box) -> Polygon:
    """The pixel box's outline in map coordinates (through the geotransform)."""
    row0, row1, col0, col1 = box
    corners = [(col0, row0), (col1, row0), (col1, row1), (col0, row1)]
    return Polygon([transform @ corner for corner in corners])


def pixel_size(transform: Affine) -> float:
    return max(abs(transform.a), abs(transform.e), abs(transform.b), abs(transform.d))


def equal_area_m2(geometry: Polygon, crs_wkt: str) -> float:
    """Area on a Lambert Azimuthal Equal Area projection centred on the polygon, on the
    CRS's own ellipsoid: an independent oracle for the pipeline's geodesic area."""
    crs = CRS.from_wkt(crs_wkt)
    geographic = crs.geodetic_crs
    dense = shapely.segmentize(geometry, geometry.length / 400)
    to_lonlat = Transformer.from_crs(crs, geographic, always_xy=True)
    lonlat = shapely.transform(dense, lambda xy: np.column_stack(to_lonlat.transform(*xy.T)))
    centre = lonlat.centroid
    ellipsoid = geographic.ellipsoid
    laea = CRS.from_proj4(
        f"+proj=laea +lat_0={centre.y} +lon_0={centre.x} +a={ellipsoid.semi_major_metre} "
        f"+rf={ellipsoid.inverse_flattening} +units=m +no_defs"
    )
    to_laea = Transformer.from_crs(geographic, laea, always_xy=True)
    return shapely.transform(lonlat, lambda xy: np.column_stack(to_laea.transform(*xy.T))).area


def read_features(path: Path) -> tuple[list, dict[str, np.ndarray]]:
    """The polygons and fields of a one-prompt result (layer "saymap")."""
    meta, _, wkb, fields = pyogrio.raw.read(path, layer="saymap")
    return list(shapely.from_wkb(wkb)), dict(zip(meta["fields"], fields, strict=True))
