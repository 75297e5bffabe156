"""Suggested sentences for an analyst's label layer: each, sent back as the wizard sends it
(the feature's WKT), is true on the very chip training cuts for it, and names its one
feature alone; features a sentence could not train on are not suggested."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from shapely.geometry import box

from saymap.engine.errors import DatasetError
from saymap.training.data_sources import request_dataset
from saymap.training.geometry_expressions import resolve
from saymap.training.preview import preview_request
from saymap.training.recipe import recipe_from_dict
from saymap.training.suggestions import Suggestion, suggest_sentences
from tests.engine.generated import GRIDS, noise, write_raster

_, WEST, NORTH, PIXEL = GRIDS["web_mercator"]  # 0.3 m pixels, as kampala's working grid
SIDE_PX = 1024
SIZES = {"building": (6.0, 22.0), "storage tank": (4.0, 9.0)}


def recipe(chip: int = 128):
    return recipe_from_dict({"data": {"chip_size": chip, "full_ratio": 1.0}})


def scene(folder: Path, n: int = 70, seed: int = 0, lonlat: bool = False) -> dict:
    """A raster and a layer of non-overlapping boxes of two classes and varied sizes (some
    cut by the raster's edge, two outside it), as a train request's dataset."""
    raster = write_raster(folder / "scene.tif", noise(3, SIDE_PX), "web_mercator")
    rng = np.random.default_rng(seed)
    span = SIDE_PX * PIXEL
    geoms: list[shapely.Geometry] = []
    classes: list[str] = []
    while len(geoms) < n:
        cls = str(rng.choice(list(SIZES), p=[0.75, 0.25]))
        w, h = rng.uniform(*SIZES[cls], 2)
        x, y = rng.uniform(-8, span + 8 - w), rng.uniform(-8, span + 8 - h)
        g = box(WEST + x, NORTH - y - h, WEST + x + w, NORTH - y)
        if not any(g.distance(o) < 1.0 for o in geoms):
            geoms.append(g)
            classes.append(cls)
    geoms += [box(WEST - 90, NORTH, WEST - 70, NORTH + 20)] * 2  # outside the raster
    classes += ["building", "building"]
    layer = gpd.GeoDataFrame({"class": classes}, geometry=geoms, crs="EPSG:3857")
    if lonlat:  # a GeoJSON without a crs member: lon/lat by RFC 7946, reprojected on use
        labels = folder / "labels.geojson"
        labels.write_text(layer.to_crs("EPSG:4326").to_json(drop_id=True))
    else:
        labels = folder / "labels.gpkg"
        layer.to_file(labels, driver="GPKG")
    return {"rasters": [str(raster)], "labels": str(labels), "class_field": "class"}


def strip(folder: Path, share: float) -> dict:
    """A validation area: the east `share` of the raster, in the raster's CRS."""
    span = SIDE_PX * PIXEL
    bounds = [WEST + (1 - share) * span, NORTH - span, WEST + span, NORTH]
    return {"area": {"bounds": bounds, "crs": "EPSG:3857"}}


def check_on_training_chips(
    dataset: dict, suggestions: list[Suggestion], chip: int, gsd_m: float | None
) -> None:
    """Each suggestion, as the wizard sends it back: training's own chip for it, the label
    polygons there (weak samples one per feature, to list them), and the resolver's reading."""
    rows = [{"wkt": s.wkt, "sentence": s.sentence} for s in suggestions]
    request = {**dataset, "sentences": rows, "class_samples": "feature"}
    built, _, _ = request_dataset(request, chip, gsd_m)
    weak = [r for r in built.records if r.kind == "weak"]
    for n, s in enumerate(suggestions, start=1):
        (r,) = [r for r in built.records if r.sample_id.endswith(f"/geometry{n}/sentence")]
        assert r.expression == s.sentence
        spec = built.specs[r.raster]
        tile = box(*window_bounds(Window(r.col, r.row, r.size, r.size), spec.transform))
        here = [w for w in weak if w.raster == r.raster and w.geometries[0].intersects(tile)]
        ids = [int(w.sample_id.rsplit("/", 1)[1]) for w in here]
        gdf = gpd.GeoDataFrame(
            {"class": pd.Series([w.class_name for w in here], index=ids)},
            geometry=gpd.GeoSeries([w.geometries[0] for w in here], index=ids),
            crs=spec.crs.to_wkt(),
        )
        assert resolve(s.sentence, gdf, tile) == {s.feature_id}, s
        assert gdf.geometry[s.feature_id].within(tile), s  # wholly inside its chip
        # Its mask is that feature (reprojected row by row: equal to the last few bits).
        assert r.geometries[0].equals_exact(gdf.geometry[s.feature_id], 1e-6)


@pytest.mark.parametrize(("lonlat", "gsd_m"), [(False, None), (True, 0.45)])
def test_every_suggestion_names_its_one_feature_on_its_training_chip(
    tmp_path: Path, lonlat: bool, gsd_m: float | None
) -> None:
    dataset = scene(tmp_path, lonlat=lonlat)
    got = suggest_sentences(dataset, recipe(), gsd_m, limit=20, seed=3)
    assert 10 <= len(got) <= 20
    assert len({s.feature_id for s in got}) == len(got)  # one per feature
    assert len({s.kind for s in got}) >= 3, got  # varied
    check_on_training_chips(dataset, got, 128, gsd_m)
    assert suggest_sentences(dataset, recipe(), gsd_m, limit=20, seed=3) == got
    fewer = suggest_sentences(dataset, recipe(), gsd_m, limit=4, seed=3)
    assert len(fewer) == 4 and len({s.kind for s in fewer}) >= 3


def test_nothing_in_the_validation_area_or_already_described(tmp_path: Path) -> None:
    dataset = scene(tmp_path)
    area = strip(tmp_path, 0.4)
    first = suggest_sentences(dataset, recipe(), None, limit=8)
    written = [{"wkt": s.wkt, "sentence": s.sentence} for s in first[:3]]
    written.append({"feature_id": first[3].feature_id, "sentence": first[3].sentence})
    body = {**dataset, "validation": area, "sentences": written}
    got = suggest_sentences(body, recipe(), None, limit=20)
    assert got and not {s.feature_id for s in got} & {s.feature_id for s in first[:4]}
    check_on_training_chips(body, got, 128, None)
    # The preview (the trainer's own split) trains on every one of them.
    with_them = {**body, "sentences": [{"wkt": s.wkt, "sentence": s.sentence} for s in got]}
    fates = preview_request(with_them, recipe(), None).sentences
    assert [f.fate for f in fates] == ["train"] * len(got)


def test_a_bad_class_field_is_one_dataset_error(tmp_path: Path) -> None:
    dataset = {**scene(tmp_path, n=10), "class_field": "kind"}
    with pytest.raises(DatasetError, match="has no field 'kind'") as caught:
        suggest_sentences(dataset, recipe(), None)
    assert "\n" not in str(caught.value)


def test_no_sentence_holds_gives_none(tmp_path: Path) -> None:
    """One building: nothing to compare it with, so no sentence names it alone; and a layer
    whose features all lie in the validation area has nothing to suggest either."""
    raster = write_raster(tmp_path / "one.tif", noise(3, 512), "web_mercator")
    labels = tmp_path / "one.geojson"
    ring = [[WEST + 30, NORTH - 40], [WEST + 45, NORTH - 40], [WEST + 45, NORTH - 30],
            [WEST + 30, NORTH - 30], [WEST + 30, NORTH - 40]]  # fmt: skip
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}
    feature = {"type": "Feature", "properties": {"class": "building"},
               "geometry": {"type": "Polygon", "coordinates": [ring]}}  # fmt: skip
    layer = {"type": "FeatureCollection", "crs": crs, "features": [feature]}
    labels.write_text(json.dumps(layer))
    one = {"rasters": [str(raster)], "labels": str(labels), "class_field": "class"}
    assert suggest_sentences(one, recipe(), None) == []
    (tmp_path / "all").mkdir()
    dataset = scene(tmp_path / "all", n=30)
    everything = {**dataset, "validation": strip(tmp_path, 1.0)}
    assert suggest_sentences(everything, recipe(), None) == []


def test_kampala_labels(real_data: Path) -> None:
    """The real layer on the default model's working grid (0.3 m), 128 px chips: the same
    guarantee, and nothing whose chip touches the east strip the scorecard keeps back.
    (On 256 px chips each holds a dozen similar buildings: no sentence names one alone.)"""
    dataset = {
        "rasters": [str(real_data / "kampala" / "kampala_west_rgb.tif")],
        "labels": str(real_data / "kampala" / "kampala_west_buildings.geojson"),
        "class_field": "class",
    }
    got = suggest_sentences(dataset, recipe(128), 0.3, limit=20)
    assert len(got) >= 5 and len({s.kind for s in got}) >= 2, got
    check_on_training_chips(dataset, got, 128, 0.3)
    rows = [{"wkt": s.wkt, "sentence": s.sentence} for s in got]
    fates = preview_request({**dataset, "sentences": rows}, recipe(128), 0.3).sentences
    assert [f.fate for f in fates] == ["train"] * len(got)
