"""Training on the real samples of ../shared/data/real: labels that line up with their
imagery, the fixed hold-outs, the scorecard on Kampala's strip (of the brightness segmenter
and of the shipped default model), sentences from a real layer.

Every test here needs the real samples, so the module skips once, with one reason, where
../shared is absent (a fresh clone). The tests of the same code on small written fixtures
stay in test_datasets.py, test_real_mix.py, test_scorecard.py and
test_geometry_expressions.py, which run everywhere.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from shapely.geometry import box

from saymap.engine.errors import DatasetError
from saymap.engine.model import load_model
from saymap.engine.paths import SHIPPED_MODELS
from saymap.training.datasets import LayerSource, build_layer_dataset
from saymap.training.geometry_expressions import expressions_for_chip
from saymap.training.holdouts import DUBAI_HOLDOUT_TILE, dubai_images
from saymap.training.scorecard import ScorecardSettings, markdown_table, run_scorecard
from tests.conftest import skip_module_without_real_data
from tests.engine.brightness import BrightnessSegmenter
from tests.training.test_geometry_expressions import KINDS, _check

skip_module_without_real_data(
    "training on real samples (the rest of tests/training runs everywhere)"
)
pytestmark = pytest.mark.real_data


# -- datasets: labels line up with their imagery ------------------------------------------


def _edge_alignment(ds) -> tuple[tuple[int, int], float]:
    """Image gradient along the mask outline, summed over chips, for shifts of +-3 px.

    Labels that fit the imagery put their outline on edges, so the unshifted outline
    scores highest; a CRS or transform mistake moves the peak or flattens it.
    """
    totals: dict[tuple[int, int], float] = {}
    for k in range(len(ds)):
        s = ds[k]
        gy, gx = np.gradient(s.image.astype(np.float32).mean(axis=2))
        magnitude = np.hypot(gx, gy)
        m = s.mask > 0
        inner = np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1)
        edge = m & ~inner
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                shifted = np.roll(np.roll(edge, dy, 0), dx, 1)
                totals[(dy, dx)] = totals.get((dy, dx), 0.0) + float(magnitude[shifted].mean())
    best = max(totals, key=totals.__getitem__)
    contrast = totals[(0, 0)] / (sum(totals.values()) / len(totals))
    return best, contrast


def test_kampala_chips_match_the_instance_raster(real_data: Path) -> None:
    root = real_data / "kampala"
    ds = build_layer_dataset(
        [LayerSource(root / "kampala_west_rgb.tif")],
        root / "kampala_west_buildings.geojson",
        class_field="class",
        id_field="instance_id",
    )
    # Chips touching the east 25 % (the scorecard's hold-out) are never made.
    assert 0 < ds.report.held_out < 64 and len(ds) + ds.report.held_out == 64
    assert ds.report.labels[0].crs == "EPSG:3857"
    strip = 2048 * 0.75
    assert all(ds.window_of(k)[1].col_off + 256 <= strip for k in range(len(ds)))
    ious = []
    with rasterio.open(root / "kampala_west_building_instances.tif") as src:
        for k in range(0, len(ds), 4):
            sample = ds[k]
            _, window = ds.window_of(k)
            truth = src.read(1, window=window, boundless=True) == int(
                sample.sample_id.split("/")[-1]
            )
            pred = sample.mask > 0
            assert sample.image.shape == (256, 256, 3) and sample.expression == "building"
            ious.append((truth & pred).sum() / (truth | pred).sum())
    assert min(ious) > 0.9


def test_real_labels_sit_on_image_edges(real_data: Path) -> None:
    kampala = build_layer_dataset(
        [LayerSource(real_data / "kampala/kampala_west_rgb.tif")],
        real_data / "kampala/kampala_west_buildings.geojson",
        class_field="class",
        group=True,
        chip_size=512,
        exclude_holdouts=False,  # the labels' alignment over the whole raster
    )
    best, contrast = _edge_alignment(kampala)
    assert max(abs(best[0]), abs(best[1])) <= 1 and contrast > 1.1
    spacenet = build_layer_dataset(
        [LayerSource(real_data / "spacenet_custom_proj/sample_geotiff_custom_proj.tif")],
        real_data / "spacenet_custom_proj/geotiff_custom_proj_labels.geojson",
        class_name="field",
        group=True,
        chip_size=512,
    )
    best, contrast = _edge_alignment(spacenet)
    assert best == (0, 0) and contrast > 1.1


def test_geojson_without_crs_in_metres_takes_the_raster_crs(real_data: Path) -> None:
    root = real_data / "spacenet_custom_proj"
    ds = build_layer_dataset(
        [LayerSource(root / "sample_geotiff_custom_proj.tif")],
        root / "geotiff_custom_proj_labels.geojson",
        class_name="field",
    )
    report = ds.report.labels[0]
    assert "assumed to be the raster's CRS" in report.crs_rule
    assert "Albers" in report.crs
    assert report.n_used == 19 and report.n_clipped > 0  # some fields overhang the east edge
    sample = ds[0]
    assert sample.image.dtype == np.uint8 and sample.image.std() > 10  # int16 stretched
    # Saying the labels are lon/lat (what a naive reader assumes) finds nothing, loudly.
    with pytest.raises(DatasetError, match=r"no feature .* overlaps"):
        build_layer_dataset(
            [LayerSource(root / "sample_geotiff_custom_proj.tif")],
            root / "geotiff_custom_proj_labels.geojson",
            class_name="field",
            label_crs="EPSG:4326",
        )


def test_lonlat_geojson_without_crs_is_reprojected(real_data: Path, tmp_path: Path) -> None:
    root = real_data / "kampala"
    data = json.loads((root / "kampala_west_buildings.geojson").read_text())
    to_lonlat = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    for feature in data["features"]:
        ring = feature["geometry"]["coordinates"][0]
        feature["geometry"]["coordinates"][0] = [list(to_lonlat.transform(x, y)) for x, y in ring]
    del data["crs"]
    path = tmp_path / "lonlat.geojson"
    path.write_text(json.dumps(data))
    kwargs = dict(class_field="class", id_field="instance_id")
    a = build_layer_dataset([LayerSource(root / "kampala_west_rgb.tif")], path, **kwargs)
    b = build_layer_dataset(
        [LayerSource(root / "kampala_west_rgb.tif")],
        root / "kampala_west_buildings.geojson",
        **kwargs,
    )
    assert "lon/lat" in a.report.labels[0].crs_rule
    for k in (0, 10, 40):
        ma, mb = a[k].mask > 0, b[k].mask > 0
        assert (ma & mb).sum() / (ma | mb).sum() > 0.98


# -- real chips in the mix, the hold-out strip --------------------------------------------


def test_dubai_samples_are_group_samples_outside_the_hold_out(real_data: Path) -> None:
    from saymap.training.dubai import DubaiDataset
    from saymap.training.holdouts import DUBAI_HOLDOUT_TILE

    data = DubaiDataset(real_data / "dubai_landcover", chip_size=256)
    assert len(data) > 500
    assert not any(DUBAI_HOLDOUT_TILE in image.parts for image, _ in data.pairs)
    sample = data[0]
    assert sample.kind == "weak" and sample.expression_type == "group"
    assert sample.expression.startswith("all ") and sample.mask.sum() >= 64
    assert data.meta(0).sample_id == sample.sample_id


def test_hold_out_chips_may_validate_but_never_train(real_data: Path) -> None:
    import rasterio
    from pyproj import Transformer

    from saymap.training.data_sources import layer_datasets

    raster = real_data / "kampala" / "kampala_west_rgb.tif"
    with rasterio.open(raster) as src:  # the east quarter (the scorecard's strip) in lon/lat
        x0, y0 = src.xy(0, 1536, offset="ul")
        x1, y1 = src.xy(src.height, src.width, offset="ul")
        to_lonlat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
    (lon0, lon1), (lat1, lat0) = to_lonlat.transform([x0, x1], [y0, y1])
    spec = {
        "rasters": [str(raster)],
        "labels": str(real_data / "kampala" / "kampala_west_buildings.geojson"),
        "class_field": "class",
        "validation_area": {"bounds": [lon0, lat0, lon1, lat1], "crs": "EPSG:4326"},
    }
    train, val = layer_datasets(spec, 64)
    built = train.dataset
    assert built.held and val is not None and len(val)
    assert not set(train.indices) & built.held  # nothing of the strip is trained on
    assert set(val.indices) <= built.held  # the strip's chips do validate
    no_area = {k: v for k, v in spec.items() if k != "validation_area"}
    train_all, none = layer_datasets(no_area, 64)
    assert none is None and not set(train_all.indices) & train_all.dataset.held


# -- the scorecard and its hold-outs ------------------------------------------------------


def test_dubai_hold_out_tile_is_never_a_training_image(real_data: Path) -> None:
    train = dubai_images(real_data / "dubai_landcover", holdout=False)
    held = dubai_images(real_data / "dubai_landcover", holdout=True)
    assert held and train
    assert all(DUBAI_HOLDOUT_TILE in p.parts for p, _ in held)
    assert not any(DUBAI_HOLDOUT_TILE in p.parts for p, _ in train)


def test_scorecard_runs_the_pipeline_on_the_strip(real_data: Path) -> None:
    model = BrightnessSegmenter()
    model.card = {"gsd_m": 0.3}
    card = run_scorecard(model, real_data, ScorecardSettings(device="cpu"), ["kampala"])
    [row] = card["sources"]
    [block] = card["blocks"]
    assert (row["source"], row["class"], block["block"]) == (
        "kampala",
        "building",
        "kampala_west_rgb",
    )
    # every scored pixel lies in the 512-column strip of the 2048 x 2048 raster
    assert row["tp"] + row["fp"] + row["fn"] <= 512 * 2048
    assert row["tp"] + row["fn"] > 0  # the strip has labelled buildings
    assert card["pooled_orthophoto_building_iou"] == pytest.approx(row["iou"], abs=1e-4)
    assert "| kampala | all | building |" in markdown_table(card)


# -- sentences from a real layer ----------------------------------------------------------


def test_zanzibar_buildings_give_every_kind(real_data: Path) -> None:
    gdf = gpd.read_file(real_data / "hot_zanzibar" / "zanzibar_buildings.geojson")
    gdf.index = range(len(gdf))
    side = 512 * 0.3  # chips of 512 px at 0.3 m, in the layer's EPSG:3857 units
    counts: Counter = Counter()
    n = 0
    for _, block in gdf.groupby("block"):
        x0, y0, x1, y1 = block.total_bounds
        for x in np.arange(x0, x1, side):
            for y in np.arange(y0, y1, side):
                chip = box(x, y, x + side, y + side)
                sub = gdf[gdf.intersects(chip)]
                if len(sub):
                    n += 1
                    rng = np.random.default_rng(n)
                    exprs = expressions_for_chip(sub, chip, rng=rng, max_per_chip=None)
                    _check(exprs, sub, chip)
                    counts.update(e.expression_type for e in exprs)
    print("zanzibar sentences per kind:", dict(sorted(counts.items())))
    assert all(counts[k] > 0 for k in KINDS), counts


# -- the shipped default model on an orthophoto it never saw ---------------------------


@pytest.mark.skipif(
    not (SHIPPED_MODELS / "default" / "model.safetensors").is_file(),
    reason="no shipped default model in engine/models/default (make train-default)",
)
def test_default_model_maps_buildings_on_an_orthophoto_it_never_saw(real_data: Path) -> None:
    """Kampala's east strip (the scorecard hold-out), end to end: 0.51 IoU when shipped; a
    model that learnt no buildings scores under 0.1 there (BENCHMARKS.md, Real imagery)."""
    model = load_model(SHIPPED_MODELS / "default")
    card = run_scorecard(model, real_data, ScorecardSettings(device="cpu"), ["kampala"])
    [row] = card["sources"]
    assert row["iou"] > 0.4 and row["precision"] > 0.5 and row["recall"] > 0.5
