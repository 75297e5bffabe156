"""Datasets from rasters + label layers: the rules, and bad input says one thing.

Small GeoTIFF + GeoPackage fixtures written here for the rules (CRS, repair, clipping,
sentences, bad input); the alignment checks on the real samples are in test_real_data.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.transform import from_origin

from saymap.engine.errors import DatasetError
from saymap.training.datasets import (
    ChipFolderDataset,
    LayerSource,
    build_layer_dataset,
    write_chips,
)
from tests.engine.generated import buildings

# -- small fixtures ----------------------------------------------------------------------

CRS = "EPSG:32633"
ORIGIN = (500_000.0, 5_000_000.0)


@pytest.fixture
def raster(tmp_path: Path) -> Path:
    """A 128 x 128 RGB GeoTIFF, 1 m pixels, with a bright square at rows/cols 40..60."""
    path = tmp_path / "scene.tif"
    image = np.full((3, 128, 128), 60, np.uint8)
    image[:, 40:60, 40:60] = 220
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=128,
        height=128,
        count=3,
        dtype="uint8",
        crs=CRS,
        transform=from_origin(*ORIGIN, 1.0, 1.0),
    ) as dst:
        dst.write(image)
    return path


def _px_box(c0: float, r0: float, c1: float, r1: float) -> shapely.Polygon:
    x0, y0 = ORIGIN
    return shapely.box(x0 + c0, y0 - r1, x0 + c1, y0 - r0)


def _write_layer(path: Path, geoms, **columns) -> Path:
    fields = list(columns)
    values = [
        np.asarray(v, dtype=object if isinstance(v[0], str | type(None)) else None)
        for v in columns.values()
    ]
    pyogrio.raw.write(
        path,
        np.asarray(shapely.to_wkb(geoms), object),
        values,
        fields,
        driver="GPKG",
        geometry_type="Polygon",
        crs=CRS,
    )
    return path


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    bowtie = shapely.Polygon(
        [
            (ORIGIN[0] + 80, ORIGIN[1] - 80),
            (ORIGIN[0] + 100, ORIGIN[1] - 100),
            (ORIGIN[0] + 100, ORIGIN[1] - 80),
            (ORIGIN[0] + 80, ORIGIN[1] - 100),
        ]
    )
    geoms = [_px_box(40, 40, 60, 60), bowtie, _px_box(110, 10, 140, 30), _px_box(5, 100, 20, 115)]
    return _write_layer(
        tmp_path / "labels.gpkg",
        geoms,
        fid_text=["a", "b", "c", "d"],
        kind=["building", "tank", "building", ""],
        note=["the bright square building", "", "", ""],
    )


def test_weak_samples_repair_clip_and_report(raster: Path, layer: Path) -> None:
    ds = build_layer_dataset(
        [LayerSource(raster)],
        layer,
        class_field="kind",
        id_field="fid_text",
        chip_size=64,
        classes=["building", "tank", "ship"],
    )
    report = ds.report.labels[0]
    assert report.n_repaired == 1  # the bow-tie
    assert report.n_clipped == 1  # "c" overhangs the east edge
    assert report.n_no_class == 1  # "d"
    assert report.empty_classes == ["ship"]
    assert any("'ship' has no usable feature" in line for line in ds.report.lines())
    by_id = {ds.records[k].sample_id.split("/")[-1]: k for k in range(len(ds))}
    square = ds[by_id["a"]]
    assert square.kind == "weak" and square.expression == "building"
    # The mask is exactly the bright square: labels and pixels line up.
    assert np.array_equal(square.mask > 0, square.image[..., 0] > 200)
    clipped = ds[by_id["c"]]
    assert clipped.mask.sum() == 18 * 20  # cols 110..128 of rows 10..30 survive


def test_text_field_and_csv_sentences(raster: Path, layer: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "sentences.csv"
    csv_path.write_text("id,sentence\nb,the tank on the right\na;c,both buildings\n")
    ds = build_layer_dataset(
        [LayerSource(raster)],
        layer,
        class_field="kind",
        id_field="fid_text",
        text_field="note",
        expressions=csv_path,
        chip_size=128,
    )
    full = [ds[k] for k in range(len(ds)) if ds.records[k].kind == "full"]
    texts = {s.expression: s for s in full}
    assert set(texts) == {"the bright square building", "the tank on the right", "both buildings"}
    assert texts["the tank on the right"].class_name == "tank"
    assert texts["both buildings"].mask.sum() == 20 * 20 + 18 * 20  # a, and c clipped
    assert all(s.expression_type == "sentence" for s in full)


def test_geojson_sentences_use_their_geometry(raster: Path, layer: Path, tmp_path: Path) -> None:
    path = tmp_path / "sentences.geojson"
    g = _px_box(40, 40, 50, 60)
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"sentence": "the west half of it"},
                        "geometry": shapely.geometry.mapping(g),
                    }
                ],
            }
        )
    )
    ds = build_layer_dataset(
        [LayerSource(raster)], layer, class_field="kind", expressions=path, chip_size=64
    )
    (k,) = [k for k in range(len(ds)) if ds.records[k].kind == "full"]
    s = ds[k]
    assert s.mask.sum() == 10 * 20 and s.class_name == "building"


def test_write_chips_round_trip(raster: Path, layer: Path, tmp_path: Path) -> None:
    ds = build_layer_dataset([LayerSource(raster)], layer, class_field="kind", chip_size=64)
    out = tmp_path / "chips"
    assert write_chips(ds, out) == len(ds)
    back = ChipFolderDataset(out)
    assert len(back) == len(ds)
    for k in range(len(ds)):
        assert np.array_equal(back[k].mask, ds[k].mask)
        assert np.array_equal(back[k].image, ds[k].image)
    with rasterio.open(out / "images" / "000000.tif") as src:
        assert src.crs.to_string() == CRS and src.width == 64


BAD_INPUT = [
    ({}, "name the class field"),
    ({"class_field": "category"}, "has no field 'category'"),
    ({"class_field": "empty"}, "empty in all"),
    ({"class_field": "kind", "far": True}, "no feature of"),
    (
        {"class_field": "kind", "id_field": "fid_text", "csv": "id,sentence\nzz,the ghost\n"},
        "feature id 'zz' is not in",
    ),
]


@pytest.mark.parametrize(("options", "message"), BAD_INPUT)
def test_bad_input_one_clear_error_nothing_written(
    raster: Path, tmp_path: Path, options: dict, message: str
) -> None:
    options = dict(options)
    shift = 10_000 if options.pop("far", False) else 0
    geoms = [shapely.affinity.translate(_px_box(10, 10, 30, 30), shift, 0)]
    layer = _write_layer(
        tmp_path / "l.gpkg", geoms, kind=["building"], empty=[None], fid_text=["a"]
    )
    args = [
        sys.executable,
        "-m",
        "saymap.engine.cli",
        "data",
        "chips",
        "--raster",
        str(raster),
        "--labels",
        str(layer),
        "--out",
        str(tmp_path / "out"),
        "--chip-size",
        "64",
    ]
    if "csv" in options:
        (tmp_path / "s.csv").write_text(options.pop("csv"))
        args += ["--expressions", str(tmp_path / "s.csv")]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", value]
    run = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    lines = [x for x in run.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], run.stderr
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_chips_command_writes_a_folder(raster: Path, layer: Path, tmp_path: Path) -> None:
    out = tmp_path / "chips"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "saymap.engine.cli",
            "data",
            "chips",
            "--raster",
            str(raster),
            "--labels",
            str(layer),
            "--class-field",
            "kind",
            "--chip-size",
            "64",
            "--group",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "repaired invalid geometries: 1" in run.stderr
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert {r["type"] for r in records} == {"group"}
    assert {r["class"] for r in records} == {"building", "tank"}


def test_datasets_from_layers_for_the_train_request(raster: Path, layer: Path) -> None:
    from saymap.training.data_sources import datasets_from_layers

    request = {
        "rasters": [str(raster)],
        "labels": str(layer),
        "class_field": "kind",
        "id_field": "fid_text",
        "sentences": [{"feature_id": "a", "sentence": "the bright square"}],
    }
    # By default a class name trains as segment jobs read it: every feature of the class in
    # a grid chip ("all buildings"), not the one feature a chip was centred on.
    train, val = datasets_from_layers(request, chip_size=64)
    samples = [train[k] for k in range(len(train))]
    assert val is None and samples[-1].expression == "the bright square"
    groups = [s for s in samples if s.expression_type == "group"]
    assert {s.expression for s in groups} == {"all buildings", "all tanks"}
    assert len(groups) == len(samples) - 1
    # the chips on the grid that hold building a (rows/cols 40-60) show all of its pixels
    assert sum(int(s.mask.sum()) for s in groups if s.class_name == "building") >= 400
    # WREL's one-instance label, when asked for: a, b, c, one chip each, + the sentence
    feature = {**request, "class_samples": "feature"}
    train, val = datasets_from_layers(feature, chip_size=64)
    assert val is None and len(train) == 4
    assert {train[k].expression for k in range(3)} == {"building", "tank"}
    with pytest.raises(DatasetError, match="class_samples is one of group, feature"):
        datasets_from_layers({**request, "class_samples": "instance"})
    train, val = datasets_from_layers({**feature, "validation": {"fraction": 0.5}}, 64)
    assert len(train) + len(val) == 4 and len(val) > 0
    ids = {val[k].sample_id.split("/")[1] for k in range(len(val))}
    assert ids.isdisjoint({train[k].sample_id.split("/")[1] for k in range(len(train))})
    with pytest.raises(DatasetError, match="sentence item 1: feature id 'zz'"):
        datasets_from_layers({**feature, "sentences": [{"feature_id": "zz", "sentence": "x"}]})


def test_several_rasters_each_feature_from_the_one_it_lies_on(
    raster: Path, layer: Path, tmp_path: Path
) -> None:
    halves = []
    with rasterio.open(raster) as src:
        for name, col in (("west", 0), ("east", 64)):
            window = rasterio.windows.Window(col, 0, 64, 128)
            profile = {**src.profile, "width": 64, "transform": src.window_transform(window)}
            with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
            halves.append(LayerSource(tmp_path / f"{name}.tif"))
    ds = build_layer_dataset(halves, layer, class_field="kind", id_field="fid_text", chip_size=32)
    where = {r.sample_id: r.raster for r in ds.records}
    assert where == {"west/a": 0, "east/b": 1, "east/c": 1}
    square = ds[[r.sample_id for r in ds.records].index("west/a")]
    assert np.array_equal(square.mask > 0, square.image[..., 0] > 200)
    far = _write_layer(
        tmp_path / "far.gpkg",
        [shapely.affinity.translate(_px_box(0, 0, 10, 10), 5000, 0)],
        kind=["building"],
    )
    with pytest.raises(DatasetError, match="overlaps any of the 2 rasters"):
        build_layer_dataset(halves, far, class_field="kind")


def test_lonlat_geojson_without_crs_is_reprojected(tmp_path: Path) -> None:
    """The generated twin of test_real_data.py's check on kampala: the same buildings in
    lon/lat without a crs member give the masks their EPSG:3857 original gives."""
    raster, labels = buildings(tmp_path / "kampala", size=512, per_side=4)
    data = json.loads(labels.read_text())
    to_lonlat = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    for feature in data["features"]:
        ring = feature["geometry"]["coordinates"][0]
        feature["geometry"]["coordinates"][0] = [list(to_lonlat.transform(x, y)) for x, y in ring]
    del data["crs"]
    path = tmp_path / "lonlat.geojson"
    path.write_text(json.dumps(data))
    kwargs = dict(class_field="class", id_field="instance_id", chip_size=128)
    a = build_layer_dataset([LayerSource(raster)], path, **kwargs)
    b = build_layer_dataset([LayerSource(raster)], labels, **kwargs)
    assert "lon/lat" in a.report.labels[0].crs_rule
    assert "lon/lat" not in b.report.labels[0].crs_rule
    assert len(a) == len(b) == 16  # one sample per building
    for k in range(len(a)):
        ma, mb = a[k].mask > 0, b[k].mask > 0
        assert mb.sum() >= 64 * 64 // 2  # most of a 64 px building lies in its chip
        assert (ma & mb).sum() / (ma | mb).sum() > 0.98
