"""Sentences computed from polygons: each resolves to exactly its targets, ambiguity says
nothing, areas are m² whatever the layer's CRS. That a real layer gives every kind is
checked in test_real_data.py."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.transform import from_origin
from rasterio.windows import transform as window_transform
from shapely.geometry import box

from saymap.engine.class_names import plural
from saymap.training.data_sources import layer_datasets
from saymap.training.datasets import LayerSource, build_layer_dataset
from saymap.training.geometry_expressions import (
    AREA_MARGIN,
    GeometryExpression,
    denote,
    expressions_for_chip,
    measure_chip,
    resolve,
)

UTM = "EPSG:32633"
X0, Y0, SIDE = 500_000.0, 4_500_000.0, 150.0
CHIP = box(X0, Y0, X0 + SIDE, Y0 + SIDE)
KINDS = {"class", "group", "largest", "smallest", "position", "relation", "n_largest", "area"}
SINGULAR = {"largest", "smallest", "position", "relation"}
SIZES = {"building": (5, 25), "storage tank": (6, 14), "vehicle": (2, 5)}


def _layer(geoms, classes, crs: str = UTM, first_id: int = 100) -> gpd.GeoDataFrame:
    """Ids start at 100, so an id mixed up with a row position shows."""
    index = range(first_id, first_id + len(geoms))
    return gpd.GeoDataFrame({"class": classes}, geometry=list(geoms), crs=crs, index=index)


def random_layer(seed: int, n: int = 16) -> gpd.GeoDataFrame:
    """Boxes of three classes around the chip, some cut by its edge, plus maybe a road."""
    rng = np.random.default_rng(seed)
    geoms: list[shapely.Geometry] = []
    classes: list[str] = []
    if rng.random() < 0.5:
        y = Y0 + rng.uniform(20, SIDE - 30)
        geoms.append(box(X0 - 20, y, X0 + SIDE + 20, y + 8))
        classes.append("road")
    for _ in range(200):
        if len(geoms) >= n:
            break
        cls = str(rng.choice(list(SIZES), p=[0.6, 0.2, 0.2]))
        lo, hi = SIZES[cls]
        w, h = rng.uniform(lo, hi, 2)
        x, y = rng.uniform(-10, SIDE + 10 - w), rng.uniform(-10, SIDE + 10 - h)
        g = box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)
        if not any(g.intersects(o) for o, c in zip(geoms, classes, strict=True) if c != "road"):
            geoms.append(g)
            classes.append(cls)
    return _layer(geoms, classes)


def _check(exprs: list[GeometryExpression], gdf: gpd.GeoDataFrame, chip) -> None:
    scene = measure_chip(gdf, chip)
    for e in exprs:
        got = denote(e.text, scene)
        if e.kind == "weak":
            assert len(e.target_ids) == 1 and set(e.target_ids) <= got, e
        else:
            assert got == set(e.target_ids), (e, got)
        if e.expression_type != "group":  # only "all <class>" may include a cut object
            assert all(chip.contains(gdf.geometry[i]) for i in e.target_ids), e
        if e.expression_type in SINGULAR:
            assert len(e.target_ids) == 1, e


def test_every_sentence_resolves_to_exactly_its_targets() -> None:
    seen: Counter = Counter()
    for seed in range(40):
        gdf = random_layer(seed)
        exprs = expressions_for_chip(gdf, CHIP, rng=np.random.default_rng(seed), max_per_chip=None)
        _check(exprs, gdf, CHIP)
        seen.update(e.expression_type for e in exprs)
    assert set(seen) == KINDS, seen  # every kind comes out of a rich layer


def test_resolve_measures_the_chip_itself() -> None:
    gdf = random_layer(3)
    for e in expressions_for_chip(gdf, CHIP, max_per_chip=12):
        got = resolve(e.text, gdf, CHIP)
        assert got == set(e.target_ids) or (e.kind == "weak" and set(e.target_ids) <= got)


def test_max_per_chip_draws_from_several_kinds() -> None:
    gdf = random_layer(5)
    exprs = expressions_for_chip(gdf, CHIP, max_per_chip=6)
    assert len(exprs) == 6
    assert len({e.expression_type for e in exprs}) >= 5


def _buildings(sizes: list[float], places: list[tuple[float, float]] | None = None):
    places = places or [(10 + 30 * k, 60) for k in range(len(sizes))]
    geoms = [
        box(X0 + x, Y0 + y, X0 + x + s, Y0 + y + s) for s, (x, y) in zip(sizes, places, strict=True)
    ]
    return _layer(geoms, ["building"] * len(sizes))


def _texts(gdf) -> list[str]:
    return [e.text for e in expressions_for_chip(gdf, CHIP, max_per_chip=None)]


@pytest.mark.parametrize(
    ("sizes", "named"),
    [
        ([12, 12, 5, 5], False),  # two equal largest
        ([12, 11.5, 5, 5], False),  # 1.09 x the area of the second: not at a glance
        ([12, 10.5, 5, 5], True),  # 1.31 x
    ],
)
def test_largest_only_when_clear(sizes, named) -> None:
    assert ("the largest building" in _texts(_buildings(sizes))) is named


def test_a_cut_object_is_never_described_but_still_competes() -> None:
    # The biggest building hangs over the left edge; the biggest whole one is not "largest".
    gdf = _buildings([20, 10, 5, 5], [(-5, 60), (40, 60), (80, 60), (110, 60)])
    exprs = expressions_for_chip(gdf, CHIP, max_per_chip=None)
    assert "the largest building" not in [e.text for e in exprs]
    for e in exprs:
        if e.expression_type != "group":
            assert 100 not in e.target_ids, e
        else:
            assert 100 in e.target_ids  # "all buildings" includes its visible part


def test_two_in_one_place_get_no_place() -> None:
    gdf = _buildings([6, 6, 6], [(10, 120), (30, 130), (120, 10)])  # y is north: the top
    texts = _texts(gdf)
    assert not any(p in t for t in texts for p in ("top left", "on the left", "at the top"))
    assert "the building in the bottom right corner" in texts
    assert "the building on the right" in texts


def _street(extra: list[tuple[float, float, float]]) -> gpd.GeoDataFrame:
    """A road across the chip (cut by both edges) and buildings (x, y, side) around it."""
    road = box(X0 - 5, Y0 + 70, X0 + SIDE + 5, Y0 + 78)
    houses = [box(X0 + x, Y0 + y, X0 + x + s, Y0 + y + s) for x, y, s in extra]
    return _layer([road, *houses], ["road"] + ["building"] * len(extra))


def test_relations_name_one_object_or_nothing() -> None:
    # 101 sits 2 m north of the road; 102 is far south; 103 is large and far north.
    texts = _texts(_street([(20, 80, 10), (100, 20, 10), (60, 110, 20)]))
    assert "the building next to the road" in texts
    assert "the building above the road" in texts
    assert "the building left of the largest building" not in texts  # not level with it
    # A second house by the road: "next to the road" would name two.
    texts = _texts(_street([(20, 80, 10), (100, 20, 10), (60, 110, 20), (50, 80, 6)]))
    assert not any(t.startswith("the building next to the road") for t in texts)
    # ...or one only just out of reach (within the slack) is too close a call.
    texts = _texts(_street([(20, 80, 10), (100, 20, 10), (60, 110, 20), (50, 83, 6)]))
    assert "the building next to the road" not in texts


def test_area_thresholds_keep_their_margin() -> None:
    for seed in range(20):
        gdf = random_layer(seed)
        scene = measure_chip(gdf, CHIP)
        for e in expressions_for_chip(gdf, CHIP, max_per_chip=None):
            m = re.fullmatch(r"(.+) (larger|smaller) than (\d+) (m²|square metres)", e.text)
            if e.expression_type != "area":
                continue
            assert m, e.text
            singular = {plural(n): n for n in scene.objects["noun"]}[m[1]]
            members = scene.of(singular)
            thr = float(m[3])
            assert (abs(members["area_m2"] - thr) > AREA_MARGIN * members["area_m2"]).all()


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:3857"])
def test_areas_are_square_metres_in_any_crs(crs) -> None:
    gdf = random_layer(7)
    other = gdf.to_crs(crs)
    chip = box(*gpd.GeoSeries([CHIP], crs=UTM).to_crs(crs).total_bounds)
    scene = measure_chip(other, chip)
    true = gdf.area[scene.objects.index]
    assert np.allclose(scene.objects["area_m2"], true, rtol=0.01)
    exprs = expressions_for_chip(other, chip, max_per_chip=None)
    _check(exprs, other, chip)
    assert any(e.expression_type == "area" for e in exprs)


def test_web_mercator_is_not_taken_for_square_metres() -> None:
    """At 60° N a Web Mercator m² is a quarter of one on the ground."""
    utm = "EPSG:32633"
    north = box(500_000, 6_650_000, 500_150, 6_650_150)
    geoms = [box(500_010 + 30 * k, 6_650_050, 500_020 + 30 * k, 6_650_060) for k in range(3)]
    gdf = _layer(geoms, ["building"] * 3, utm).to_crs("EPSG:3857")
    chip = box(*gpd.GeoSeries([north], crs=utm).to_crs("EPSG:3857").total_bounds)
    areas = measure_chip(gdf, chip).objects["area_m2"]
    assert np.allclose(areas, 100, rtol=0.01)
    assert (gdf.area > 350).all()


def test_pluralise() -> None:
    cases = {"building": "buildings", "storage tank": "storage tanks", "bus": "buses",
             "bush": "bushes", "body": "bodies", "person": "people", "solar array": "solar arrays",
             "water": "water bodies", "key": "keys"}  # fmt: skip
    assert {k: plural(k) for k in cases} == cases


def test_layer_dataset_makes_full_samples_from_geometry(tmp_path: Path) -> None:
    raster = tmp_path / "scene.tif"
    with rasterio.open(
        raster, "w", driver="GTiff", width=256, height=256, count=3, dtype="uint8", crs=UTM,
        transform=from_origin(X0, Y0 + 128, 0.5, 0.5),
    ) as dst:  # fmt: skip
        dst.write(np.full((3, 256, 256), 90, np.uint8))
    gdf = random_layer(11)
    gdf.to_file(tmp_path / "labels.gpkg", driver="GPKG")
    ds = build_layer_dataset(
        [LayerSource(raster)],
        tmp_path / "labels.gpkg",
        class_field="class",
        chip_size=128,
        sentences_from_geometry=True,
    )
    full = [k for k, r in enumerate(ds.records) if r.kind == "full"]
    assert full and {ds.records[k].expression_type for k in full} <= KINDS - {"class"}
    spec = ds.specs[0]
    for k in full[:10]:
        r, sample = ds.records[k], ds[k]
        expected = rasterize(
            [(g, 1) for g in r.geometries],
            out_shape=(128, 128),
            transform=window_transform(ds.window_of(k)[1], spec.transform),
        )
        assert sample.mask.any() and (sample.mask == expected).all()
        assert sample.expression == r.expression and sample.kind == "full"


def test_recipe_key_generate_sentences(tmp_path: Path) -> None:
    raster = tmp_path / "scene.tif"
    with rasterio.open(
        raster, "w", driver="GTiff", width=128, height=128, count=3, dtype="uint8", crs=UTM,
        transform=from_origin(X0, Y0 + 128, 1.0, 1.0),
    ) as dst:  # fmt: skip
        dst.write(np.full((3, 128, 128), 90, np.uint8))
    random_layer(2).to_file(tmp_path / "labels.gpkg", driver="GPKG")
    table = {"rasters": [str(raster)], "labels": str(tmp_path / "labels.gpkg")}
    table["class_field"] = "class"
    plain, _ = layer_datasets(table, 128)
    with_sentences, _ = layer_datasets({**table, "generate_sentences": True}, 128)
    assert len(with_sentences) > len(plain)
    assert any(with_sentences[k].kind == "full" for k in range(len(with_sentences)))
