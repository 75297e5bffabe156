"""Full sentences for a label layer: a CSV, a GeoJSON, or a list (the train request).

A row names its target by feature id (several joined with ";") or by a geometry (WKT in a
CSV, the feature's own geometry in a GeoJSON). A feature id the layer lacks stops
everything with the line it is on; ids of features outside the rasters are skipped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import shapely
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from saymap.engine.errors import DatasetError
from saymap.engine.raster import RasterSpec
from saymap.training.chips import ChipRecord, centred_window
from saymap.training.labels import (
    LabelFeature,
    RawLayer,
    feature_ids,
    label_crs_for,
    read_layer,
    reprojector,
)

SENTENCE_COLUMNS = ("sentence", "expression", "text")


@dataclass(frozen=True)
class SentenceRow:
    """One sentence and what it points at: feature ids, or a geometry (labels' CRS)."""

    line: int
    sentence: str
    ids: tuple[str, ...] = ()
    geometry: BaseGeometry | None = None
    class_name: str | None = None
    geometry_in_raster_crs: bool = False


def _ids(value: object) -> tuple[str, ...]:
    return tuple(v.strip() for v in str(value or "").split(";") if v.strip())


def _wkt(text: str, where: str) -> BaseGeometry:
    try:
        return shapely.from_wkt(text)
    except shapely.errors.GEOSException as exc:
        raise DatasetError(f"{where}: bad wkt: {exc}") from exc


def rows_from_csv(path: Path, id_field: str | None) -> list[SentenceRow]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        sentence_col = next((c for c in SENTENCE_COLUMNS if c in columns), None)
        id_col = next((c for c in (id_field, "id", "feature_id") if c and c in columns), None)
        if sentence_col is None or (id_col is None and "wkt" not in columns):
            raise DatasetError(
                f"{path.name} needs a sentence column ({'/'.join(SENTENCE_COLUMNS)}) and "
                f"a feature id column ({id_field or 'id'}) or a wkt column; it has "
                f"{', '.join(columns) or 'no header'}"
            )
        rows = []
        for line, rec in enumerate(reader, start=2):
            ids = _ids(rec.get(id_col) if id_col else None)
            wkt = rec.get("wkt") or ""
            geometry = _wkt(wkt, f"{path.name} line {line}") if not ids and wkt else None
            rows.append(
                SentenceRow(
                    line,
                    (rec.get(sentence_col) or "").strip(),
                    ids,
                    geometry,
                    rec.get("class") or None,
                )
            )
        return rows


def rows_from_geojson(path: Path, raster_crs_wkt: str, label_crs: str | None) -> list[SentenceRow]:
    """Features with a sentence property; each geometry is the target, reprojected now."""
    raw = read_layer(path)
    sentence_col = next((c for c in SENTENCE_COLUMNS if c in raw.columns), None)
    if sentence_col is None:
        raise DatasetError(f"{path.name} has no sentence property ({'/'.join(SENTENCE_COLUMNS)})")
    crs, _ = label_crs_for(raw, raster_crs_wkt, label_crs)
    reproject = reprojector(crs, raster_crs_wkt)
    classes = raw.columns.get("class")
    rows = []
    for k, (geometry, sentence) in enumerate(
        zip(raw.geometries, raw.columns[sentence_col], strict=True)
    ):
        g = reproject(geometry) if reproject and geometry is not None else geometry
        cls = str(classes[k]) if classes is not None and classes[k] else None
        rows.append(SentenceRow(k + 1, str(sentence or "").strip(), (), g, cls, True))
    return rows


def rows_from_dicts(items: list[dict]) -> list[SentenceRow]:
    """The train request's sentences: {feature_id | wkt, sentence} (wkt in labels' CRS)."""
    rows = []
    for k, item in enumerate(items, start=1):
        ids = _ids(item.get("feature_id"))
        wkt = item.get("wkt")
        geometry = _wkt(wkt, f"sentence {k}") if wkt and not ids else None
        rows.append(
            SentenceRow(
                k, str(item.get("sentence") or "").strip(), ids, geometry, item.get("class")
            )
        )
    return rows


def read_sentences(
    path: Path, raster_crs_wkt: str, id_field: str | None, label_crs: str | None
) -> list[SentenceRow]:
    if not path.exists():
        raise DatasetError(f"expressions file not found: {path}")
    if path.suffix.lower() == ".csv":
        return rows_from_csv(path, id_field)
    return rows_from_geojson(path, raster_crs_wkt, label_crs)


def _footprint(spec: RasterSpec) -> BaseGeometry:
    return box(*window_bounds(Window(0, 0, spec.width, spec.height), spec.transform))


def sentence_records(
    rows: list[SentenceRow],
    source: str,
    raw: RawLayer,
    specs: list[RasterSpec],
    per_raster: list[list[LabelFeature]],
    id_field: str | None,
    label_crs: str | None,
    size: int,
    unit: str = "line",
) -> list[ChipRecord]:
    """A full sample per sentence, its mask the features (or geometry) it points at."""
    known = set(feature_ids(raw, id_field))
    usable = [{f.fid: f for f in features} for features in per_raster]
    records = []
    for r in rows:
        where = f"{source} {unit} {r.line}"
        if not r.sentence:
            raise DatasetError(f"{where}: the sentence is empty")
        if r.ids:
            missing = [v for v in r.ids if v not in known]
            if missing:
                raise DatasetError(
                    f"{where}: feature id {missing[0]!r} is not in {raw.path.name} "
                    f"(ids from {_id_source(id_field)})"
                )
            for i, lookup in enumerate(usable):
                found = [lookup[v] for v in r.ids if v in lookup]
                if found:
                    union = shapely.union_all([f.geometry for f in found])
                    col, row = centred_window(specs[i], union, size)
                    sid = f"{Path(specs[i].path).stem}/{'+'.join(r.ids)}/sentence{r.line}"
                    records.append(
                        ChipRecord(
                            i,
                            col,
                            row,
                            size,
                            tuple(f.geometry for f in found),
                            r.sentence,
                            "full",
                            "sentence",
                            r.class_name or found[0].class_name,
                            sid,
                        )
                    )
                    break
            continue
        if r.geometry is None or r.geometry.is_empty:
            raise DatasetError(f"{where}: no feature id and no geometry")
        for i, spec in enumerate(specs):
            geometry = r.geometry
            if not r.geometry_in_raster_crs:
                crs, _ = label_crs_for(raw, spec.crs.to_wkt(), label_crs)
                reproject = reprojector(crs, spec.crs.to_wkt())
                geometry = reproject(geometry) if reproject else geometry
            if geometry.intersects(_footprint(spec)):
                col, row = centred_window(spec, geometry, size)
                near = [f for f in per_raster[i] if f.geometry.intersects(geometry)]
                name = r.class_name or (near[0].class_name if near else "object")
                # The line makes the split key (held_out hashes the second part): one per sentence.
                sid = f"{Path(spec.path).stem}/geometry{r.line}/sentence"
                records.append(
                    ChipRecord(
                        i, col, row, size, (geometry,), r.sentence, "full", "sentence", name, sid
                    )
                )
                break
        else:
            raise DatasetError(f"{where}: the geometry misses every raster")
    return records


def _id_source(id_field: str | None) -> str:
    return f"field {id_field!r}" if id_field else "the layer's feature ids"
