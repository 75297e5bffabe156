"""Probabilities → polygons: threshold by windows, merge across window borders, clean up.

Works in the probability raster's pixel space (integer pixel edges, so pieces cut by a window
border share exact edges and union cleanly), then maps to the raster's CRS at the end.
Windows are read one at a time; only pieces touching a window border wait to be merged, and
a merged object is released as soon as no later window row can touch it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.features import rasterize, shapes
from rasterio.windows import Window
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from saymap.engine.errors import Cancelled
from saymap.engine.heap import trim_heap
from saymap.engine.output import LAYER, GeoPackageWriter

# Map-coordinate polygons → the `source` field of each (the raster whose area holds it).
SourceOf = Callable[[np.ndarray], Sequence[str]]
FEATURE_BATCH = 2000  # features appended to the GeoPackage at a time


@dataclass(frozen=True)
class VectorizeOptions:
    threshold: float = 0.5  # a pixel is the target where its probability is above this
    min_area_px: float = 16.0  # smaller objects are dropped (in pixels, after hole filling)
    max_hole_px: float = 64.0  # holes up to this size (pixels) are filled
    simplify_px: float = 1.0  # Douglas-Peucker tolerance, in pixels ("about a pixel")
    window_size: int = 1024  # pixels per side of the windows the probabilities are read in


@dataclass
class Component:
    """A 4-connected group of above-threshold pixels, in pixel coordinates, with its stats."""

    geometry: BaseGeometry
    probability_sum: float
    pixels: int

    @property
    def score(self) -> float:
        return self.probability_sum / max(self.pixels, 1)


def _pieces(probabilities: np.ndarray, mask: np.ndarray, col0: int, row0: int) -> list[Component]:
    """Connected pieces of one window, each with the sum and count of its pixels."""
    offset = Affine.translation(col0, row0)
    geometries = [
        shape(g)
        for g, _ in shapes(mask.view(np.uint8), mask=mask, connectivity=4, transform=offset)
    ]
    labels = rasterize(
        ((g, i + 1) for i, g in enumerate(geometries)),
        out_shape=mask.shape,
        transform=offset,
        dtype="int32",
    ).ravel()
    sums = np.bincount(labels, weights=probabilities.ravel(), minlength=len(geometries) + 1)
    counts = np.bincount(labels, minlength=len(geometries) + 1)
    return [Component(g, float(sums[i + 1]), int(counts[i + 1])) for i, g in enumerate(geometries)]


def _merge(components: list[Component]) -> list[Component]:
    """Union pieces that share an edge (not just a corner: 4-connectivity, as within windows)."""
    if len(components) < 2:
        return components
    geometries = np.array([c.geometry for c in components], dtype=object)
    left, right = shapely.STRtree(geometries).query(geometries, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.length(shapely.intersection(geometries[left], geometries[right])) > 0
    parent = list(range(len(components)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(left[shared], right[shared], strict=True):
        parent[find(int(a))] = find(int(b))
    groups: dict[int, list[int]] = {}
    for i in range(len(components)):
        groups.setdefault(find(i), []).append(i)
    merged = []
    for members in groups.values():
        if len(members) == 1:
            merged.append(components[members[0]])
            continue
        merged.append(
            Component(
                shapely.union_all(geometries[members]),
                sum(components[i].probability_sum for i in members),
                sum(components[i].pixels for i in members),
            )
        )
    return merged


def iter_components(
    dataset: rasterio.io.DatasetReader,
    band: int,
    threshold: float,
    window_size: int = 1024,
    cancel: threading.Event | None = None,
) -> Iterator[Component]:
    """Every connected object of one probability band, whole, read window by window."""
    height, width = dataset.height, dataset.width
    carry: list[Component] = []  # merged objects touching the bottom of the last window row
    for row0 in range(0, height, window_size):
        row1 = min(row0 + window_size, height)
        waiting = list(carry)
        for col0 in range(0, width, window_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled("segmentation cancelled while vectorising")
            col1 = min(col0 + window_size, width)
            window = Window(col0, row0, col1 - col0, row1 - row0)
            probabilities = dataset.read(band, window=window)
            mask = probabilities > threshold
            if not mask.any():
                continue
            for piece in _pieces(probabilities, mask, col0, row0):
                minx, miny, maxx, maxy = piece.geometry.bounds
                on_border = (
                    (minx == col0 and col0 > 0)
                    or (maxx == col1 and col1 < width)
                    or (miny == row0 and row0 > 0)
                    or (maxy == row1 and row1 < height)
                )
                if on_border:
                    waiting.append(piece)
                else:
                    yield piece
        carry = []
        for component in _merge(waiting):
            if component.geometry.bounds[3] == row1 and row1 < height:
                carry.append(component)
            else:
                yield component
        trim_heap()  # a window row's arrays are gone; give their pages back


def _fill_holes(polygon: Polygon, max_hole_px: float) -> Polygon:
    if max_hole_px <= 0 or not polygon.interiors:
        return polygon
    kept = [ring for ring in polygon.interiors if Polygon(ring).area > max_hole_px]
    return Polygon(polygon.exterior, kept)


def clean(component: Component, options: VectorizeOptions) -> list[Polygon]:
    """Fill small holes, drop small objects, simplify to about a pixel (pixel space)."""
    polygons = []
    for part in shapely.get_parts(component.geometry):
        if not isinstance(part, Polygon):
            continue
        filled = _fill_holes(part, options.max_hole_px)
        if filled.area < options.min_area_px:
            continue
        simple = shapely.simplify(filled, options.simplify_px, preserve_topology=True)
        if not simple.is_valid:
            simple = shapely.make_valid(simple)
        polygons.extend(p for p in shapely.get_parts(simple) if isinstance(p, Polygon))
    return polygons


def to_map(geometries: Sequence[BaseGeometry], transform: Affine) -> np.ndarray:
    """Pixel-space geometries → the raster's CRS through its geotransform."""
    matrix = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
    return np.array(
        [shapely.affinity.affine_transform(g, matrix) for g in geometries], dtype=object
    )


_EQUAL_AREA_METHODS = (
    "equal area",  # Albers, Lambert Azimuthal / Cylindrical Equal Area, Equal Earth
    "mollweide",
    "sinusoidal",
    "eckert iv",
    "goode",
)


def is_equal_area(crs: ProjCRS) -> bool:
    """True for projected CRSs whose planar area is true area (Albers, LAEA, Mollweide...)."""
    if not crs.is_projected or crs.coordinate_operation is None:
        return False
    method = crs.coordinate_operation.method_name.lower()
    return any(name in method for name in _EQUAL_AREA_METHODS)


def area_m2(geometries: Sequence[BaseGeometry], crs_wkt: str) -> np.ndarray:
    """True area in m²: planar for equal-area projections, geodesic on the CRS's ellipsoid
    otherwise (Web/World Mercator, UTM, national grids, lon/lat, custom CRSs)."""
    crs = ProjCRS.from_wkt(crs_wkt)
    geometries = np.asarray(geometries, dtype=object)
    if len(geometries) == 0:
        return np.zeros(0, np.float64)
    if is_equal_area(crs):
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return shapely.area(geometries) * unit * unit
    # Densify so the projected straight edges follow their true path once on the ellipsoid.
    bounds = shapely.bounds(geometries)
    longest = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
    dense = shapely.segmentize(geometries, np.maximum(longest / 32, 1e-12))
    to_lonlat = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = to_lonlat.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    lonlat = shapely.transform(dense, project)
    geod = crs.get_geod()
    if geod is None:
        raise ValueError(f"CRS {crs.name!r} has no ellipsoid to measure area on")
    areas = np.empty(len(lonlat), np.float64)
    for i, geometry in enumerate(lonlat):
        parts = [orient(p, 1.0) for p in shapely.get_parts(geometry) if isinstance(p, Polygon)]
        areas[i] = sum(abs(geod.geometry_area_perimeter(p)[0]) for p in parts)
    return areas


def reproject(geometries: np.ndarray, src_wkt: str, dst_wkt: str) -> np.ndarray:
    """Polygons from one CRS to another, vertex by vertex (edges of a few pixels bend too
    little to matter); any made invalid by the warp are repaired."""
    src, dst = ProjCRS.from_wkt(src_wkt), ProjCRS.from_wkt(dst_wkt)
    if src == dst or len(geometries) == 0:
        return geometries
    transformer = Transformer.from_crs(src, dst, always_xy=True)

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    moved = shapely.transform(np.asarray(geometries, dtype=object), project)
    bad = ~shapely.is_valid(moved)
    if bad.any():
        moved[bad] = shapely.make_valid(moved[bad])
    return moved


@dataclass(frozen=True)
class Destination:
    """Where a probability raster's polygons go beyond one layer in its own CRS: one layer
    per prompt, a `source` per polygon, and another output CRS."""

    layers: dict[str, str] | None = None  # prompt → layer (None: all in "saymap")
    source_of: SourceOf | None = None  # None: `common["source"]` for every polygon
    out_crs_wkt: str | None = None  # None: the probabilities' CRS

    def layer(self, prompt: str) -> str:
        return (self.layers or {}).get(prompt, LAYER)


def _write_batch(
    writer: GeoPackageWriter,
    polygons: list[BaseGeometry],
    scores: list[float],
    transform: Affine,
    crs_wkt: str,
    fields: dict[str, str],
    destination: Destination,
    layer: str,
) -> int:
    geometries = to_map(polygons, transform)
    size = len(geometries)
    values: dict[str, Sequence] = {key: [value] * size for key, value in fields.items()}
    if destination.source_of is not None:
        values["source"] = list(destination.source_of(geometries))
    areas = area_m2(geometries, crs_wkt)  # on the grid segmented, before any reprojection
    if destination.out_crs_wkt is not None:
        geometries = reproject(geometries, crs_wkt, destination.out_crs_wkt)
    writer.write(geometries, {"score": scores, "area_m2": areas, **values}, layer)
    return size


def vectorize_to_geopackage(
    probabilities_path: Path,
    writer: GeoPackageWriter,
    prompts: Sequence[str],
    crs_wkt: str,
    options: VectorizeOptions,
    common: dict[str, str],
    cancel: threading.Event | None,
    destination: Destination | None = None,
) -> dict[str, int]:
    """Band i of the probability raster holds prompts[i]: its polygons are appended to the
    GeoPackage in batches (with `common` fields: model, run_id...); returns counts.
    `destination` sends each prompt to its own layer, names each polygon's source, and
    reprojects (a collection's groups in other CRSs)."""
    destination = destination or Destination()
    counts: dict[str, int] = {}
    with rasterio.open(probabilities_path) as probabilities:
        for band, prompt in enumerate(prompts, start=1):
            fields = {"prompt": prompt, **common}
            layer = destination.layer(prompt)
            counts[prompt] = 0
            polygons: list[BaseGeometry] = []
            scores: list[float] = []
            flush = functools.partial(
                _write_batch, writer, transform=probabilities.transform, crs_wkt=crs_wkt,
                fields=fields, destination=destination, layer=layer,
            )  # fmt: skip

            for component in iter_components(
                probabilities, band, options.threshold, options.window_size, cancel
            ):
                cleaned = clean(component, options)
                polygons.extend(cleaned)
                scores.extend([component.score] * len(cleaned))
                if len(polygons) >= FEATURE_BATCH:
                    counts[prompt] += flush(polygons, scores)
                    polygons, scores = [], []
            if polygons:
                counts[prompt] += flush(polygons, scores)
    return counts
