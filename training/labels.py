"""Analysts' label layers: read, decide their CRS, repair, reproject and clip to a raster.

The label CRS rule (in this order; the report says which step decided):
1. `label_crs` given by the user: it wins.
2. The file declares a CRS: a GeoPackage's or shapefile's own; for GeoJSON only a
   `crs` member counts (GDAL reports EPSG:4326 for every GeoJSON without one).
3. No CRS declared and every coordinate is a plausible longitude/latitude
   (|x| <= 180, |y| <= 90): RFC 7946's lon/lat (OGC:CRS84).
4. No CRS declared and coordinates are not lon/lat (metres in a projection, like the
   custom-Albers SpaceNet sample): the raster's CRS, reported as assumed.

Geometries that are invalid are repaired (make_valid, polygon parts kept) and counted;
those that end up empty, lie outside the raster, or have no class are counted and
skipped; features partly outside the raster are clipped. Nothing here writes.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.errors
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from pyproj.exceptions import CRSError as ProjCRSError
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from saymap.engine.errors import CRSError, DatasetError
from saymap.engine.raster import RasterSpec
from saymap.engine.raster_info import crs_label

LONLAT = "OGC:CRS84"


@dataclass
class LabelFeature:
    """One usable feature: its id, class, optional sentence, geometry in raster CRS."""

    fid: str
    class_name: str
    geometry: BaseGeometry  # polygonal, in the raster's CRS, clipped to the raster
    text: str | None = None


@dataclass
class LabelReport:
    """What reading the layer did, for the person who made it."""

    layer: str
    n_read: int = 0
    n_used: int = 0
    n_repaired: int = 0
    n_empty: int = 0
    n_no_class: int = 0
    n_outside: int = 0
    n_clipped: int = 0
    crs: str = ""
    crs_rule: str = ""
    classes: Counter = field(default_factory=Counter)
    empty_classes: list[str] = field(default_factory=list)
    n_sentences: int = 0

    def lines(self) -> list[str]:
        out = [
            f"labels: {self.layer}: {self.n_read} features read, {self.n_used} used",
            f"label CRS: {self.crs} ({self.crs_rule})",
            f"repaired invalid geometries: {self.n_repaired}; empty after repair: "
            f"{self.n_empty}; without a class: {self.n_no_class}; outside the raster: "
            f"{self.n_outside}; clipped at the raster edge: {self.n_clipped}",
            "classes: " + ", ".join(f"{c} ({n})" for c, n in sorted(self.classes.items())),
        ]
        for c in self.empty_classes:
            out.append(f"class {c!r} has no usable feature: no sample will teach it")
        if self.n_sentences:
            out.append(f"full sentences: {self.n_sentences}")
        return out


@dataclass
class RawLayer:
    path: Path
    fields: list[str]
    columns: dict[str, np.ndarray]
    fids: list[str]
    geometries: list[BaseGeometry | None]
    declared_crs: str | None


def _geojson_declares_crs(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not readable GeoJSON: {exc}") from exc
    return isinstance(data, dict) and data.get("crs") is not None


def read_layer(path: str | os.PathLike[str], layer: str | None = None) -> RawLayer:
    """All features of a vector layer, with its fields and the CRS it declares (if any)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"label layer not found: {path}")
    try:
        meta, fids, wkb, values = pyogrio.raw.read(path, layer=layer, return_fids=True)
    except pyogrio.errors.DataSourceError as exc:
        raise DatasetError(f"{path} is not a vector layer GDAL can read ({exc})") from exc
    fields = [str(f) for f in meta["fields"]]
    declared = meta.get("crs")
    if path.suffix.lower() in (".geojson", ".json") and not _geojson_declares_crs(path):
        declared = None
    geometries = [shapely.from_wkb(g) if g is not None else None for g in wkb]
    return RawLayer(
        path=path,
        fields=fields,
        columns=dict(zip(fields, values, strict=True)),
        fids=[str(int(f)) for f in fids],
        geometries=geometries,
        declared_crs=declared,
    )


def _proj(value: str, what: str) -> ProjCRS:
    try:
        return ProjCRS.from_user_input(value)
    except ProjCRSError as exc:
        raise CRSError(f"{what} {value!r} is not a coordinate reference system: {exc}") from exc


def plausible_lonlat(geometries: list[BaseGeometry | None]) -> bool:
    parts = [g for g in geometries if g is not None and not g.is_empty]
    if not parts:
        return False
    x0, y0, x1, y1 = shapely.total_bounds(parts)
    return -180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90


def label_crs_for(raw: RawLayer, raster_crs: str, label_crs: str | None) -> tuple[ProjCRS, str]:
    """The CRS of the labels and the rule that decided it (see the module docstring)."""
    if label_crs:
        return _proj(label_crs, "--label-crs"), "given by the user"
    if raw.declared_crs:
        return _proj(
            raw.declared_crs, f"the CRS declared by {raw.path.name}"
        ), "declared by the file"
    if plausible_lonlat(raw.geometries):
        return _proj(LONLAT, "lon/lat"), "none declared, coordinates are lon/lat (RFC 7946)"
    return (
        _proj(raster_crs, "the raster CRS"),
        "none declared and coordinates are not lon/lat: assumed to be the raster's CRS; "
        "pass --label-crs if that is wrong",
    )


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """Keep the polygon parts (make_valid may return lines and points beside them)."""
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [
        p for p in getattr(geometry, "geoms", []) if p.geom_type in ("Polygon", "MultiPolygon")
    ]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def reprojector(src: ProjCRS, dst_wkt: str):
    dst = ProjCRS.from_wkt(dst_wkt)
    if src.equals(dst, ignore_axis_order=True):
        return None
    transformer = Transformer.from_crs(src, dst, always_xy=True)

    def apply(geometry: BaseGeometry) -> BaseGeometry:
        return shapely.transform(
            geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )

    return apply


def class_values(raw: RawLayer, class_field: str | None, class_name: str | None) -> list[str]:
    """The class of each feature ("" where missing), after checking the field exists."""
    if class_field is None and class_name is None:
        raise DatasetError(
            f"name the class field of {raw.path.name} with --class-field "
            f"(its fields: {', '.join(raw.fields) or 'none'}), "
            "or give --class-name to use one class for every feature"
        )
    n = len(raw.geometries)
    if class_field is None:
        return [str(class_name)] * n
    if class_field not in raw.columns:
        raise DatasetError(
            f"{raw.path.name} has no field {class_field!r}; its fields: "
            f"{', '.join(raw.fields) or 'none'}"
        )
    values = [_text(v) for v in raw.columns[class_field]]
    if not any(values):
        raise DatasetError(
            f"the class field {class_field!r} of {raw.path.name} is empty in all {n} features"
        )
    return values


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def feature_ids(raw: RawLayer, id_field: str | None) -> list[str]:
    if id_field is None:
        return raw.fids or [str(i) for i in range(len(raw.geometries))]
    if id_field not in raw.columns:
        raise DatasetError(
            f"{raw.path.name} has no id field {id_field!r}; its fields: {', '.join(raw.fields)}"
        )
    return [_text(v) for v in raw.columns[id_field]]


def prepare_features(
    raw: RawLayer,
    spec: RasterSpec,
    *,
    class_field: str | None = None,
    class_name: str | None = None,
    text_field: str | None = None,
    id_field: str | None = None,
    label_crs: str | None = None,
    classes: list[str] | None = None,
    require_overlap: bool = True,
) -> tuple[list[LabelFeature], LabelReport]:
    """Usable features in the raster's CRS and pixel extent, and the report of what was done."""
    report = LabelReport(layer=raw.path.name, n_read=len(raw.geometries))
    labels = class_values(raw, class_field, class_name)
    ids = feature_ids(raw, id_field)
    if text_field is not None and text_field not in raw.columns:
        raise DatasetError(
            f"{raw.path.name} has no text field {text_field!r}; fields: {', '.join(raw.fields)}"
        )
    texts = [_text(v) for v in raw.columns[text_field]] if text_field else [""] * len(labels)
    src_crs, rule = label_crs_for(raw, spec.crs.to_wkt(), label_crs)
    epsg = src_crs.to_epsg()
    report.crs = f"EPSG:{epsg}" if epsg else crs_label(src_crs)  # type: ignore[arg-type]
    report.crs_rule = rule
    reproject = reprojector(src_crs, spec.crs.to_wkt())
    left, top = spec.transform @ (0, 0)
    right, bottom = spec.transform @ (spec.width, spec.height)
    footprint = box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    features: list[LabelFeature] = []
    bounds_seen: list[BaseGeometry] = []
    for fid, label, text, geometry in zip(ids, labels, texts, raw.geometries, strict=True):
        if not label:
            report.n_no_class += 1
            continue
        if classes is not None and label not in classes:
            continue
        if geometry is None or geometry.is_empty:
            report.n_empty += 1
            continue
        if not geometry.is_valid:
            geometry = _polygonal(shapely.make_valid(geometry))
            report.n_repaired += 1
        geometry = _polygonal(geometry)
        if geometry.is_empty:
            report.n_empty += 1
            continue
        if reproject is not None:
            geometry = reproject(geometry)
        bounds_seen.append(geometry)
        if not geometry.intersects(footprint):
            report.n_outside += 1
            continue
        if not footprint.contains(geometry):
            geometry = _polygonal(geometry.intersection(footprint))
            report.n_clipped += 1
            if geometry.is_empty:
                report.n_outside += 1
                continue
        features.append(LabelFeature(fid, label, geometry, text or None))
    if not features and require_overlap:
        where = ""
        if bounds_seen:
            b = shapely.total_bounds(bounds_seen)
            where = f" (labels span {', '.join(f'{v:.6g}' for v in b)} in the raster's CRS"
            where += f"; the raster covers {', '.join(f'{v:.6g}' for v in footprint.bounds)})"
        raise DatasetError(
            f"no feature of {raw.path.name} overlaps {Path(spec.path).name}{where}; label CRS "
            f"{report.crs}: {rule}"
        )
    report.n_used = len(features)
    report.classes = Counter(f.class_name for f in features)
    wanted = classes if classes is not None else sorted({c for c in labels if c})
    report.empty_classes = [c for c in wanted if report.classes[c] == 0]
    return features, report
