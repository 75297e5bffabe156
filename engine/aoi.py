"""Areas of interest: bounds or polygons in any CRS, turned into a raster window and a mask.

Everything is resolved in the raster's pixel space (the inverse geotransform), so rotated
or sheared rasters and custom CRSs need no special cases downstream.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.errors
import shapely
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from pyproj.exceptions import CRSError as ProjCRSError
from rasterio.features import geometry_mask
from rasterio.windows import Window
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from saymap.engine.errors import AOIError, CRSError
from saymap.engine.raster import RasterSpec

GEOJSON_DEFAULT_CRS = "OGC:CRS84"  # RFC 7946: GeoJSON without a crs member is lon/lat
_NUMBER = r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*"
_VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb", ".kml", ".gml")
_BOUNDS = re.compile(rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$")


@dataclass(frozen=True)
class AOI:
    """A polygon and the CRS its coordinates are in (None: the raster's own CRS)."""

    geometry: BaseGeometry
    crs: str | None = None
    label: str = "AOI"
    # True when the CRS was implied (GeoJSON's lon/lat default), not stated by anyone.
    crs_implied: bool = False


@dataclass(frozen=True)
class Region:
    """The part of a raster to segment: a pixel window, and the AOI polygon in pixel space.

    polygon_px is None when the window is exactly the area wanted (no AOI, or one that
    covers its window); otherwise pixels whose centre lies outside it are never segmented.
    """

    window: Window
    polygon_px: BaseGeometry | None = None


def aoi_from_bounds(
    minx: float, miny: float, maxx: float, maxy: float, crs: str | None = None
) -> AOI:
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy, maxx - minx, maxy - miny)):
        raise AOIError(
            f"AOI bounds must be finite numbers whose width and height are finite too; "
            f"got {minx},{miny},{maxx},{maxy}"
        )
    if not (minx < maxx and miny < maxy):
        raise AOIError(
            f"AOI bounds must have minx < maxx and miny < maxy; got {minx},{miny},{maxx},{maxy}"
        )
    return AOI(box(minx, miny, maxx, maxy), crs, f"bounds {minx},{miny},{maxx},{maxy}")


def aoi_from_json(value: dict, what: str = "area") -> AOI:
    """An AOI from its JSON form, {"bounds": [minx, miny, maxx, maxy] | "wkt": ..., "crs": ...}
    (the HTTP API's and the train request's shape)."""
    bounds, wkt, crs = value.get("bounds"), value.get("wkt"), value.get("crs")
    if (bounds is None) == (wkt is None):
        raise AOIError(f"the {what} needs exactly one of bounds or wkt")
    if bounds is not None:
        if len(bounds) != 4:
            raise AOIError(f"bounds must be [minx, miny, maxx, maxy], got {bounds!r}")
        return aoi_from_bounds(*(float(v) for v in bounds), crs=crs)
    try:
        geometry = shapely.from_wkt(wkt)
    except (shapely.errors.GEOSException, ValueError, TypeError) as exc:
        raise AOIError(f"the {what}'s wkt is not a WKT geometry: {exc}") from exc
    if geometry.is_empty or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise AOIError(f"the {what}'s wkt must be a non-empty POLYGON or MULTIPOLYGON")
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    return AOI(geometry, crs, f"WKT {what}")


def _polygons_only(geometry: BaseGeometry, label: str) -> BaseGeometry:
    parts = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        raise AOIError(f"{label} holds no polygon (found {geometry.geom_type})")
    merged = shapely.union_all(shapely.make_valid(np.array(parts, dtype=object)))
    if merged.is_empty or merged.area <= 0:
        raise AOIError(f"{label} is an empty polygon")
    return merged


def _geojson_geometry(data: dict) -> BaseGeometry:
    kind = data.get("type")
    if kind == "FeatureCollection":
        return shapely.union_all([shape(f["geometry"]) for f in data.get("features", [])])
    if kind == "Feature":
        return shape(data["geometry"])
    return shape(data)


def read_aoi_file(path: str | os.PathLike[str], crs: str | None = None) -> AOI:
    """Polygons of the first layer of a GeoJSON/GPKG/any OGR file, in the file's CRS."""
    try:
        meta, _, wkb, _ = pyogrio.raw.read(path, read_geometry=True, columns=[])
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise AOIError(f"cannot read AOI file {path}: {exc}") from exc
    if wkb is None or len(wkb) == 0:
        raise AOIError(f"AOI file {path} has no features")
    geometry = _polygons_only(shapely.union_all(shapely.from_wkb(wkb)), f"AOI file {path}")
    if crs is not None:
        return AOI(geometry, crs, f"AOI file {path}")
    if meta.get("crs"):
        # GDAL reports EPSG:4326 for a GeoJSON with no crs member; it may not be lon/lat.
        implied = str(path).lower().endswith((".geojson", ".json"))
        return AOI(geometry, meta["crs"], f"AOI file {path}", crs_implied=implied)
    raise AOIError(f"AOI file {path} has no CRS; add it after an @, e.g. {path}@EPSG:32633")


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a WKT CRS after the @ makes a name too long for a path
        return False


def parse_aoi(text: str) -> AOI:
    """--aoi: 'minx,miny,maxx,maxy[@CRS]', a WKT or GeoJSON polygon [@CRS], or a file[@CRS].

    Bounds and WKT without a CRS are taken in the raster's CRS; GeoJSON text without one is
    lon/lat (RFC 7946); a file carries its own CRS.
    """
    text = text.strip()
    if not text:
        raise AOIError("the AOI is empty")
    if _is_file(text):
        return read_aoi_file(text)
    body, _, crs_text = text.partition("@")
    body = body.strip()
    crs = crs_text.strip() or None
    if _is_file(body):
        return read_aoi_file(body, crs)
    if _BOUNDS.match(body):
        minx, miny, maxx, maxy = (float(v) for v in body.split(","))
        return aoi_from_bounds(minx, miny, maxx, maxy, crs)
    if body.startswith("{"):
        try:
            geometry = _geojson_geometry(json.loads(body))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AOIError(f"the AOI is not valid GeoJSON: {exc}") from exc
        label = "GeoJSON AOI"
        return AOI(_polygons_only(geometry, label), crs or GEOJSON_DEFAULT_CRS, label, crs is None)
    try:
        geometry = shapely.from_wkt(body)
    except shapely.errors.GEOSException:
        geometry = None
    if geometry is None:
        if os.sep in body or body.lower().endswith(_VECTOR_SUFFIXES):
            raise AOIError(f"AOI file not found: {body}")
        raise AOIError(
            f"cannot read the AOI {text!r}: give 'minx,miny,maxx,maxy[@CRS]', "
            "a WKT polygon, or a GeoJSON/GeoPackage file"
        )
    return AOI(_polygons_only(geometry, "WKT AOI"), crs, "WKT AOI")


def _proj_crs(value: str, label: str) -> ProjCRS:
    try:
        return ProjCRS.from_user_input(value)
    except ProjCRSError as exc:
        raise CRSError(f"the CRS of the {label} ({value[:60]!r}) is not a CRS: {exc}") from exc


def _check_lonlat(geometry: BaseGeometry, crs: ProjCRS, aoi: AOI) -> None:
    if not (crs.is_geographic and aoi.crs_implied):
        return
    minx, miny, maxx, maxy = geometry.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise AOIError(
            f"{aoi.label}: coordinates ({minx:.6g}, {miny:.6g}, {maxx:.6g}, {maxy:.6g}) are not "
            "longitude/latitude, but no CRS is stated; add it after an @, e.g. FILE@EPSG:32616"
        )


def to_raster_crs(aoi: AOI, spec: RasterSpec) -> BaseGeometry:
    """The AOI polygon in the raster's CRS (edges densified so they bend correctly)."""
    dst = ProjCRS.from_wkt(spec.crs.to_wkt())
    if aoi.crs is None:
        return aoi.geometry
    src = _proj_crs(aoi.crs, aoi.label)
    _check_lonlat(aoi.geometry, src, aoi)
    if src == dst:
        return aoi.geometry
    minx, miny, maxx, maxy = aoi.geometry.bounds
    dense = shapely.segmentize(aoi.geometry, max(maxx - minx, maxy - miny) / 64)
    transformer = Transformer.from_crs(src, dst, always_xy=True)

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    moved = shapely.transform(dense, project)
    if not np.all(np.isfinite(shapely.get_coordinates(moved))):
        raise AOIError(
            f"{aoi.label} does not overlap the raster: it lies outside what the raster's CRS "
            "can express (check the AOI's CRS)"
        )
    return shapely.make_valid(moved)


def resolve_region(spec: RasterSpec, aoi: AOI | None) -> Region:
    """The window to segment (and a mask polygon); AOIError when the AOI misses the raster."""
    if aoi is None:
        return Region(spec.full_window)
    try:
        in_crs = to_raster_crs(aoi, spec)
        inverse = ~spec.transform
        pixel = shapely.affinity.affine_transform(
            in_crs, [inverse.a, inverse.b, inverse.d, inverse.e, inverse.c, inverse.f]
        )
        if not np.all(np.isfinite(shapely.get_coordinates(pixel))):
            raise AOIError(f"{aoi.label} is too large to place on the raster's pixel grid")
        inside = pixel.intersection(box(0, 0, spec.width, spec.height))
    except shapely.errors.GEOSException as exc:  # coordinates so large they break noding
        raise AOIError(
            f"{aoi.label} cannot be placed on the raster ({exc}); give an area near the raster"
        ) from exc
    if inside.is_empty or inside.area <= 0:
        bounds = ", ".join(f"{v:.6g}" for v in in_crs.bounds)
        raise AOIError(
            f"{aoi.label} does not overlap the raster (AOI in the raster's CRS: {bounds}; "
            f"raster is {spec.width}x{spec.height} px)"
        )
    minx, miny, maxx, maxy = inside.bounds
    col0, row0 = math.floor(minx), math.floor(miny)
    col1, row1 = math.ceil(maxx), math.ceil(maxy)
    window = Window(col0, row0, col1 - col0, row1 - row0)
    covers = abs(inside.area - window.width * window.height) < 1e-6
    return Region(window, None if covers else inside)


def region_mask(region: Region, window: Window) -> np.ndarray | None:
    """(h, w) bool, True where a pixel centre of `window` is inside the AOI; None: all are."""
    if region.polygon_px is None:
        return None
    shape_hw = (int(window.height), int(window.width))
    offset = Affine.translation(window.col_off, window.row_off)
    return geometry_mask([region.polygon_px], out_shape=shape_hw, transform=offset, invert=True)
