"""Sentences the fine-tune wizard suggests for an analyst's own label layer.

Each suggestion is about exactly one feature F and is true on the chip training will cut
for it: the suggestion goes back as a sentence row with F's geometry as WKT (what the
wizard sends), so that very row is built by the train request's own code
(`request_dataset` → `sentence_records` → `centred_window` on the working grid), and the
sentence is generated from the label polygons measured on that chip
(`geometry_expressions`) and kept only where the resolver, reading it back, denotes {F}.

Features a suggestion could not train on are skipped as the preview would mark them: a
chip inside or across the validation area, or touching a real-imagery hold-out. (With a
validation share the choice hashes the sentence's place in the request, which the analyst
changes by keeping or removing rows: the preview marks those afterwards.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from saymap.engine.prompt import MAX_PROMPT_CHARS
from saymap.engine.raster import RasterSpec
from saymap.training.data_sources import request_dataset
from saymap.training.datasets import LayerDataset
from saymap.training.geometry_expressions import denote, expressions_for_scene, measure_chip
from saymap.training.labels import (
    LabelFeature,
    RawLayer,
    class_values,
    feature_ids,
    label_crs_for,
    prepare_features,
    read_layer,
    reprojector,
)
from saymap.training.recipe import Recipe
from saymap.training.sentences import rows_from_dicts
from saymap.training.splits import assign_validation

DEFAULT_LIMIT = 20
MAX_WKT_CHARS = 100_000  # the train request's limit on a sentence's WKT (server schemas)
BATCH = 48  # candidate features tried by the first dataset build (doubled by each next)
ENOUGH = 2  # stop trying once limit × ENOUGH features have a sentence to choose from
# training/sentences.py names a WKT sentence's record "<raster>/geometry<n>/sentence".
_GEOMETRY_ROW = re.compile(r"/geometry(\d+)/sentence$")
_PLACEHOLDER = "the object"  # rows are built to learn their chips; the text is not read


class Suggestion(NamedTuple):
    """A sentence about one feature: its OGR feature id, class and WKT in the labels' CRS,
    and the kind of sentence (largest, smallest, position, relation, area...)."""

    sentence: str
    feature_id: int
    class_name: str
    wkt: str
    kind: str


class _Candidate(NamedTuple):
    index: int  # in the raw layer
    fid: str  # the OGR feature id (QGIS's feature id for the same file)
    class_name: str
    wkt: str


def suggest_sentences(
    dataset: dict,
    recipe: Recipe,
    gsd_m: float | None,
    limit: int = DEFAULT_LIMIT,
    seed: int = 0,
) -> list[Suggestion]:
    """At most `limit` sentences, one per feature, as varied in kind as the layer allows;
    the same for the same inputs and seed. DatasetError (one line) when the dataset cannot
    be built, as for the preview; [] when no feature has a sentence that holds."""
    size = recipe.data.chip_size
    plain = {**dataset, "sentences": []}
    built, _, _ = request_dataset(plain, size, gsd_m)  # every input check the preview makes
    raw = read_layer(dataset["labels"])
    scenes = _Scenes(raw, dataset["class_field"], built.specs)
    taken = _described(raw, dataset)
    candidates = [
        c
        for c in _candidates(raw, dataset["class_field"])
        if c.index not in taken and scenes.on_a_raster(c)
    ]
    order = np.random.default_rng(seed).permutation(len(candidates))
    options: dict[int, dict[str, list[str]]] = {}  # candidate index -> kind -> sentences
    start, batch_size = 0, BATCH
    while start < len(order) and len(options) < limit * ENOUGH:
        batch = [candidates[k] for k in order[start : start + batch_size]]
        start, batch_size = start + batch_size, batch_size * 2  # few builds on a large layer
        rows = [{"wkt": c.wkt, "sentence": _PLACEHOLDER} for c in batch]
        chips = _trainable_chips({**dataset, "sentences": rows}, size, gsd_m)
        for n, c in enumerate(batch, start=1):
            if n in chips:
                found = scenes.sentences_about(c, *chips[n], seed)
                if found:
                    options[c.index] = found
    by_index = {c.index: c for c in candidates}
    tried = [candidates[k].index for k in order if candidates[k].index in options]
    return [
        Suggestion(text, int(by_index[i].fid), by_index[i].class_name, by_index[i].wkt, kind)
        for i, kind, text in _varied(tried, options, limit, seed)
    ]


def _candidates(raw: RawLayer, class_field: str) -> Iterator[_Candidate]:
    """Features a sentence row can name by WKT: a class, a valid polygon, a WKT that fits
    the request. (Repaired geometries are left out: the row's WKT would be the broken one.)"""
    classes = class_values(raw, class_field, None)
    for k, geometry in enumerate(raw.geometries):
        name = classes[k]
        if not name or geometry is None or geometry.is_empty or not geometry.is_valid:
            continue
        if geometry.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        wkt = shapely.to_wkt(geometry, rounding_precision=-1)
        if len(wkt) <= MAX_WKT_CHARS:
            yield _Candidate(k, raw.fids[k], name, wkt)


def _described(raw: RawLayer, dataset: dict) -> set[int]:
    """Layer indices the request's sentences already describe (by id, or by geometry)."""
    rows = rows_from_dicts(list(dataset.get("sentences") or ()))
    if not rows:
        return set()
    ids = feature_ids(raw, dataset.get("id_field"))
    named = {v for r in rows for v in r.ids}
    out = {k for k, v in enumerate(ids) if v in named}
    shapes = [g if g is not None else shapely.Polygon() for g in raw.geometries]
    tree = shapely.STRtree(shapes)
    for r in rows:
        if r.geometry is not None and not r.geometry.is_empty:
            out |= {int(k) for k in tree.query(r.geometry) if shapes[k].equals(r.geometry)}
    return out


def _trainable_chips(
    dataset: dict, size: int, gsd_m: float | None
) -> dict[int, tuple[int, Window]]:
    """Sentence row n -> (raster, chip window) for the rows whose chip would train: built
    and split by the train request's own code, so the window is the one training cuts."""
    built: LayerDataset
    built, area, fraction = request_dataset(dataset, size, gsd_m)
    chosen = assign_validation(built, range(len(built)), area=area, fraction=fraction)
    blocked = set(chosen.edge) | set(chosen.held)
    if area is not None:
        blocked |= set(chosen.val or ())
    chips = {}
    for k, r in enumerate(built.records):
        found = _GEOMETRY_ROW.search(r.sample_id) if r.expression_type == "sentence" else None
        if found and k not in blocked:
            chips[int(found.group(1))] = (r.raster, Window(r.col, r.row, r.size, r.size))
    return chips


class _Scenes:
    """The label polygons on each raster's working grid, as training's weak samples see
    them (`prepare_features`), and the sentences a chip of them gives about one feature."""

    def __init__(self, raw: RawLayer, class_field: str, specs: list[RasterSpec]) -> None:
        self.raw, self.specs = raw, specs
        self.features: list[list[LabelFeature]] = []
        self.positions: list[dict[str, int]] = []  # OGR feature id -> place in `features`
        self.trees: list[shapely.STRtree] = []
        self.footprints: list[BaseGeometry] = []
        self.reprojectors = []
        for spec in specs:
            features, _ = prepare_features(
                raw, spec, class_field=class_field, require_overlap=False
            )
            self.features.append(features)
            self.positions.append({f.fid: k for k, f in enumerate(features)})
            self.trees.append(shapely.STRtree([f.geometry for f in features]))
            self.footprints.append(box(*window_bounds(spec.full_window, spec.transform)))
            crs, _ = label_crs_for(raw, spec.crs.to_wkt(), None)
            self.reprojectors.append(reprojector(crs, spec.crs.to_wkt()))

    def _on_grid(self, c: _Candidate, raster: int) -> BaseGeometry:
        """The feature's geometry in a raster's CRS, as a WKT sentence row reprojects it."""
        reproject = self.reprojectors[raster]
        geometry = self.raw.geometries[c.index]
        return reproject(geometry) if reproject is not None else geometry

    def on_a_raster(self, c: _Candidate) -> bool:
        """Whether a sentence row with this feature's WKT meets a raster (else the request
        is refused: "the geometry misses every raster")."""
        return any(fp.intersects(self._on_grid(c, i)) for i, fp in enumerate(self.footprints))

    def sentences_about(
        self, c: _Candidate, raster: int, window: Window, seed: int
    ) -> dict[str, list[str]]:
        """kind -> sentences that denote exactly this feature on this chip (none when the
        feature is cut by the raster's edge: the image shows only a part of it)."""
        spec, features = self.specs[raster], self.features[raster]
        if not self.footprints[raster].contains(self._on_grid(c, raster)):
            return {}
        mine = self.positions[raster].get(c.fid)
        if mine is None:
            return {}
        chip = box(*window_bounds(window, spec.transform))
        hits = [int(k) for k in self.trees[raster].query(chip, predicate="intersects")]
        gdf = gpd.GeoDataFrame(
            {"class": pd.Series([features[k].class_name for k in hits], index=hits)},
            geometry=gpd.GeoSeries([features[k].geometry for k in hits], index=hits),
            crs=spec.crs.to_wkt(),
        )
        rng = np.random.default_rng([seed, raster, c.index])
        scene = measure_chip(gdf, chip)
        out: dict[str, list[str]] = {}
        for e in expressions_for_scene(scene, rng, max_per_chip=None):
            if e.kind != "full" or e.target_ids != (mine,) or len(e.text) > MAX_PROMPT_CHARS:
                continue
            if denote(e.text, scene) == {mine}:  # read back, it names this feature alone
                out.setdefault(e.expression_type, []).append(e.text)
        return out


def _varied(
    order: list[int], options: dict[int, dict[str, list[str]]], limit: int, seed: int
) -> list[tuple[int, str, str]]:
    """(feature, kind, sentence): the kinds taken in turn, each from the next feature (in
    the seeded order) that has one of that kind, a sentence not said yet where there is
    one, until `limit` or none is left."""
    rng = np.random.default_rng(seed)
    kinds = sorted({kind for found in options.values() for kind in found})
    kinds = [kinds[k] for k in rng.permutation(len(kinds))]
    used: set[int] = set()
    said: set[str] = set()
    picked: list[tuple[int, str, str]] = []
    while len(picked) < limit:
        before = len(picked)
        for kind in kinds:
            free = [i for i in order if i not in used and kind in options[i]]
            fresh = [i for i in free if set(options[i][kind]) - said]
            if not free:
                continue
            feature = (fresh or free)[0]
            texts = sorted(set(options[feature][kind]) - said) or options[feature][kind]
            text = texts[int(rng.integers(len(texts)))]
            picked.append((feature, kind, text))
            used.add(feature)
            said.add(text)
            if len(picked) == limit:
                break
        if len(picked) == before:
            break
    return picked
