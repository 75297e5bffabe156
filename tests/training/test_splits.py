"""Validation splits on a generated look-alike of Kampala's labelled raster: the area split
shares no pixel between training and validation, in whatever CRS the area is given."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from shapely.geometry import box

from saymap.engine.aoi import AOI, aoi_from_bounds
from saymap.engine.errors import AOIError, DatasetError
from saymap.training.data_sources import datasets_from_layers
from saymap.training.datasets import LayerDataset, LayerSource, build_layer_dataset
from saymap.training.splits import evenly_spaced, split_by_area, split_held_out, thin

SPLIT_COL = 1536  # validation: the eastern quarter of kampala_west (columns 1536..2048)


@pytest.fixture(scope="module")
def kampala(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Like kampala_west: 2048 px RGB in EPSG:3857 at 0.07 m, 64 scattered labelled buildings
    (GeoJSON with its crs member), so the splits run without ../shared."""
    root = tmp_path_factory.mktemp("kampala_like")
    raster = root / "west_rgb.tif"
    west, north, pixel = 3628312.86, 39135.76, 0.07
    transform = rasterio.transform.from_origin(west, north, pixel, pixel)
    data = np.random.default_rng(0).integers(40, 200, (3, 2048, 2048), dtype=np.uint8)
    with rasterio.open(
        raster, "w", driver="GTiff", width=2048, height=2048, count=3, dtype="uint8",
        crs="EPSG:3857", transform=transform, tiled=True, compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(data)
    features = []
    corners = np.random.default_rng(1).integers(20, 2048 - 80, (64, 2))  # scattered roofs
    for k, (top, left) in enumerate(corners.tolist()):
        x0, y0 = transform * (left, top + 40)
        x1, y1 = transform * (left + 40, top)
        features.append({
            "type": "Feature", "geometry": box(x0, y0, x1, y1).__geo_interface__,
            "properties": {"class": "building", "instance_id": k + 1, "clipped": False},
        })  # fmt: skip
    labels = root / "west_buildings.geojson"
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}
    labels.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}))
    return raster, labels


@pytest.fixture(scope="module")
def built(kampala: tuple[Path, Path]) -> LayerDataset:
    raster, labels = kampala
    return build_layer_dataset(  # hold-out chips kept: split_validation is what drops them
        [LayerSource(raster)], labels, class_field="class", id_field="instance_id",
        exclude_holdouts=False,
    )  # fmt: skip


def east_quarter(raster: Path, crs: str) -> AOI:
    """Columns SPLIT_COL.. of the raster as bounds in `crs` (the raster's is EPSG:3857)."""
    with rasterio.open(raster) as src:
        left, top = src.xy(0, SPLIT_COL, offset="ul")
        right, bottom = src.xy(src.height, src.width, offset="ul")
    if crs == "EPSG:3857":
        return aoi_from_bounds(left, bottom, right, top, crs=crs)
    to = Transformer.from_crs("EPSG:3857", crs, always_xy=True)
    (x0, x1), (y0, y1) = to.transform([left, right], [bottom, top])
    # A hair inside, so the reprojected edge does not clip the chips along it.
    return aoi_from_bounds(x0 - 1e-9, y0 - 1e-9, x1 + 1e-9, y1 + 1e-9, crs=crs)


def layer_spec(kampala: tuple[Path, Path]) -> dict:
    raster, labels = kampala
    return {"rasters": [str(raster)], "labels": str(labels), "class_field": "class"}


def east_quarter_json(kampala: tuple[Path, Path], crs: str) -> dict:
    """east_quarter in the JSON shape requests and recipes use."""
    return {"bounds": list(east_quarter(kampala[0], crs).geometry.bounds), "crs": crs}


def _pixel_box(ds, subset, k: int):
    r = ds.records[subset.indices[k]]
    return box(r.col, r.row, r.col + r.size, r.row + r.size)


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:4326"])
def test_the_area_split_shares_no_pixel(built: LayerDataset, kampala, crs: str) -> None:
    split = split_by_area(built, range(len(built)), east_quarter(kampala[0], crs))
    n_val, n_train = len(split.val), len(split.train)
    assert n_val >= 5 and n_train >= 20, (n_val, n_train)
    assert n_val + n_train + split.straddling == len(built)
    assert split.straddling > 0  # chips centred near the line exist, and are left out
    val_boxes = [_pixel_box(built, split.val, k) for k in range(n_val)]
    train_boxes = [_pixel_box(built, split.train, k) for k in range(n_train)]
    assert all(b.bounds[0] >= SPLIT_COL - 1e-6 for b in val_boxes)
    assert all(b.bounds[2] <= SPLIT_COL + 1e-6 for b in train_boxes)
    overlap = shapely.union_all(val_boxes).intersection(shapely.union_all(train_boxes))
    assert overlap.area == 0.0


def test_the_split_by_feature_overlaps_and_the_area_split_fixes_that(built) -> None:
    """Why the area split exists: held-out features' chips overlap training chips."""
    train, val = split_held_out(built, range(len(built)), 0.2)
    val_union = shapely.union_all([_pixel_box(built, val, k) for k in range(len(val))])
    train_union = shapely.union_all([_pixel_box(built, train, k) for k in range(len(train))])
    assert val_union.intersection(train_union).area > 0


def test_an_area_without_a_whole_chip_is_refused(built: LayerDataset, kampala) -> None:
    with rasterio.open(kampala[0]) as src:
        x0, y0 = src.xy(1000, 1000, offset="ul")
        x1, y1 = src.xy(1100, 1100, offset="ul")
    small = aoi_from_bounds(x0, y1, x1, y0, crs="EPSG:3857")
    with pytest.raises(DatasetError, match="holds no whole chip"):
        split_by_area(built, range(len(built)), small)
    with rasterio.open(kampala[0]) as src:
        everything = aoi_from_bounds(*src.bounds, crs="EPSG:3857")
    with pytest.raises(DatasetError, match="leaves no chip to train on"):
        split_by_area(built, range(len(built)), everything)


def test_the_train_request_takes_an_area_or_a_fraction(kampala) -> None:
    request = {
        **layer_spec(kampala),
        "validation": {"area": east_quarter_json(kampala, "EPSG:4326")},
    }
    train, val = datasets_from_layers(request)
    assert all(val.dataset.records[k].col >= SPLIT_COL for k in val.indices)
    assert len(train) + len(val) < 64  # straddling chips are in neither
    with pytest.raises(DatasetError, match="one of"):
        datasets_from_layers({**request, "validation": {"fraction": 0.2, "area": {}}})
    with pytest.raises(AOIError, match="wkt is not a WKT"):
        datasets_from_layers({**request, "validation": {"area": {"wkt": "nope", "crs": "x"}}})


def test_evenly_spaced_caps_a_set_without_dropping_its_end() -> None:
    assert evenly_spaced(10, 4) == [0, 2, 5, 7]
    assert evenly_spaced(3, 4) == [0, 1, 2] and evenly_spaced(3, None) == [0, 1, 2]
    picks = evenly_spaced(1000, 7)
    assert len(set(picks)) == 7 and picks[-1] > 850


def test_thin_keeps_an_even_spread(built: LayerDataset) -> None:
    _train, val = split_held_out(built, range(len(built)), 0.5)
    few = thin(val, 4)
    assert len(few) == 4 and set(few.indices) <= set(val.indices)
    assert few.indices == sorted(few.indices) and few.window_of(0) == val.window_of(0)
    assert thin(val, None) is val and thin(val, 10_000) is val


def test_a_recipe_layer_table_takes_a_validation_area(kampala) -> None:
    from saymap.training.data_sources import layer_datasets

    spec = {**layer_spec(kampala), "validation_area": east_quarter_json(kampala, "EPSG:3857")}
    train, val = layer_datasets(spec, chip_size=256)
    assert val is not None and len(val) and len(train)
    assert all(val.dataset.records[k].col >= SPLIT_COL for k in val.indices)
    with pytest.raises(DatasetError, match="not both"):
        layer_datasets({**spec, "validation_fraction": 0.2}, chip_size=256)


def test_sentences_drawn_on_the_map_are_split_one_by_one(kampala) -> None:
    """Sentences tied to a drawn shape (no feature id) each get their own split key: with a
    share of the features held out, some train and some validate, not all on one side."""
    raster, labels = kampala
    with rasterio.open(raster) as src:
        transform = src.transform
    drawn = []
    for k in range(40):
        left, top = 60 + 45 * k, 100 + 40 * (k % 20)
        x0, y0 = transform * (left, top + 40)
        x1, y1 = transform * (left + 40, top)
        drawn.append({"wkt": box(x0, y0, x1, y1).wkt, "sentence": f"the roof number {k}"})
    ds = build_layer_dataset(
        [LayerSource(raster)], labels, class_field="class", id_field="instance_id",
        sentences=drawn, exclude_holdouts=False,
    )  # fmt: skip
    train, val = split_held_out(ds, range(len(ds)), 0.3)
    typed = {d["sentence"] for d in drawn}

    def texts(subset) -> set[str]:
        return {ds.records[i].expression for i in subset.indices} & typed

    assert 4 <= len(texts(val)) <= 24  # about 30 % of 40
    assert len(texts(train)) == 40 - len(texts(val))
