"""POST /v1/train over HTTP: a raster and labels → a trained, registered, usable model."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine import generated
from tests.engine.server_harness import (
    TEST_MODEL,
    Engine,
    engine_session,
    install_model,
    tiny_model_folder,
    wait_for,
)

# A few steps of each LRB-WREL stage on 64 px chips: enough to run the whole path, not to learn.
RECIPE = {
    "data": {"chip_size": 64, "max_val_samples": 8},
    "optim": {"steps": 4, "batch_size": 2, "warmup_steps": 1},
    "wrel": {"method": "lrb-wrel", "bank_steps": 2},
    "run": {"checkpoint_every": 100, "eval_every": 3},
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("engine-data")
    install_model(data_dir, tiny_model_folder(tmp_path_factory.mktemp("model")))
    yield from engine_session(data_dir, "--no-preload")


@pytest.fixture(scope="module")
def kampala(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A generated look-alike of kampala_west (2048 px web Mercator, 64 buildings, ids 5 and 8
    in the east quarter), so the test runs without ../shared."""
    raster, labels = generated.buildings(tmp_path_factory.mktemp("kampala"))
    return {
        "rasters": [str(raster)],
        "labels": str(labels),
        "class_field": "class",
        "id_field": "instance_id",
        "sentences": [  # LRB-WREL's stage 1 needs a few full expressions
            {"feature_id": 2, "sentence": "the small building in the top left"},
            {"feature_id": 5, "sentence": "the roof next to the dirt road"},
            {"feature_id": 8, "sentence": "the house with the metal roof"},
        ],
        "validation": {"area": _east_quarter(raster)},
    }


def _east_quarter(raster: Path) -> dict:
    """The raster's columns 1536.. as lon/lat bounds: the validation area."""
    import rasterio
    from pyproj import Transformer

    with rasterio.open(raster) as src:
        left, top = src.xy(0, 1536, offset="ul")
        right, bottom = src.xy(src.height, src.width, offset="ul")
    to = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    (x0, x1), (y0, y1) = to.transform([left, right], [bottom, top])
    return {"bounds": [x0, y0, x1, y1], "crs": "EPSG:4326"}


@pytest.mark.slow
def test_a_train_job_registers_a_model_and_streams_metrics(
    engine: Engine, kampala: dict, tmp_path: Path
) -> None:
    request = {"name": "roofs-v1", "base_model": TEST_MODEL, "recipe": RECIPE, "dataset": kampala}
    with engine.client() as client:
        job = client.post("/v1/train", json=request).raise_for_status().json()
        assert job["kind"] == "train"
        with client.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=300) as stream:
            lines = list(stream.iter_lines())
        done = wait_for(client, job["id"], {"done", "failed", "cancelled"})
        assert done["state"] == "done", done["error"]
        assert done["result"]["model"] == "roofs-v1"
        metrics = [
            json.loads(data.removeprefix("data: "))
            for event, data in itertools.pairwise(lines)
            if event == "event: metrics"
        ]
        assert metrics and {"step", "loss", "lr"} <= set(metrics[0])
        assert any("val_iou" in m for m in metrics)
        assert set(done["metrics"]) >= {"step", "loss", "lr", "val_iou", "val_iou_before"}
        assert 0.0 <= done["metrics"]["val_iou_before"] <= 1.0  # the base model, before step 1

        models = client.get("/v1/models").raise_for_status().json()["models"]
        assert "roofs-v1" in {m["name"] for m in models}
        check_validation_outputs(done, kampala)
        # The new model segments right away (and a second train under its name is refused).
        again = client.post("/v1/train", json=request)
        assert again.status_code == 409 and "already registered" in again.json()["detail"]
        output = tmp_path / "roofs.gpkg"
        segment = client.post(
            "/v1/segment",
            json={
                "raster": kampala["rasters"][0],
                "prompts": ["building"],
                "output": str(output),
                "model": "roofs-v1",
                "aoi": {"bounds": [0, 0, 1, 1], "crs": "EPSG:3857"} | _corner(kampala),
            },
        ).raise_for_status()
        finished = wait_for(client, segment.json()["id"], {"done", "failed", "cancelled"})
        assert finished["state"] == "done", finished
        assert finished["result"]["model"] == "roofs-v1" and output.exists()
    assert not (engine.data_dir / "training" / job["id"]).exists()  # the work folder is gone


def check_validation_outputs(done: dict, kampala: dict) -> None:
    """The job's chips lie in the validation area, `saymap eval` scores them exactly as the
    job reported, and the predictions GeoPackage covers the area in the raster's CRS."""
    import pyogrio
    import pyogrio.raw
    import rasterio
    import shapely

    result = done["result"]
    model_path = Path(result["model_path"])
    chips = Path(result["validation_chips"])
    assert chips.parent.parent == model_path  # kept with the registered model
    records = [json.loads(x) for x in (chips / "samples.jsonl").read_text().splitlines()]
    assert 0 < len(records) <= RECIPE["data"]["max_val_samples"]
    assert all(r["window"][0] >= 1536 for r in records)  # wholly inside the east quarter
    out = chips.parent / "eval.json"
    run = subprocess.run(
        [sys.executable, "-m", "saymap.engine.cli", "eval", "--checkpoint", str(model_path),
         "--data", str(chips), "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    scored = json.loads(out.read_text())["results"]["native"]
    assert scored["n"] == len(records)
    assert scored["miou"] == pytest.approx(result["val_iou"], abs=1e-9)
    assert result["val_iou"] == pytest.approx(done["metrics"]["val_iou"], abs=1e-9)

    (predictions,) = (Path(p) for p in result["validation_predictions"])
    assert predictions.parent == chips.parent and predictions.is_file()
    info = pyogrio.read_info(predictions)
    with rasterio.open(kampala["rasters"][0]) as src:
        assert rasterio.crs.CRS.from_user_input(info["crs"]) == src.crs
        x_split = src.xy(0, 1536, offset="ul")[0]
    assert {"prompt", "score", "area_m2", "model"} <= set(info["fields"])
    meta, _fids, wkb, fields = pyogrio.raw.read(predictions)
    if len(wkb):  # a 4-step model may find nothing; what it finds is in the area
        assert set(fields[meta["fields"].tolist().index("prompt")]) <= {"building"}
        assert shapely.total_bounds(shapely.from_wkb(wkb))[0] >= x_split - 1.0


def _corner(kampala: dict) -> dict:
    """A 256 px AOI in the raster's top-left corner, so the check segment is quick."""
    import rasterio

    with rasterio.open(kampala["rasters"][0]) as src:
        left, top = src.xy(0, 0, offset="ul")
        right, bottom = src.xy(256, 256, offset="ul")
    return {"bounds": [left, bottom, right, top]}


def test_train_refusals_are_4xx(engine: Engine, tmp_path: Path) -> None:
    labels = tmp_path / "labels.geojson"
    labels.write_text('{"type": "FeatureCollection", "features": []}')
    dataset = {"rasters": [str(tmp_path / "none.tif")], "labels": str(labels), "class_field": "c"}
    base = {"name": "new-model", "recipe": "tiny-cpu", "dataset": dataset}
    with engine.client() as client:
        missing = client.post("/v1/train", json=base)
        assert missing.status_code == 400 and "does not exist" in missing.json()["detail"]
        taken = client.post("/v1/train", json={**base, "name": TEST_MODEL})
        assert taken.status_code == 409
        bad_name = client.post("/v1/train", json={**base, "name": "../x"})
        assert bad_name.status_code == 422
        dataset_ok = {**dataset, "rasters": [str(labels)]}
        recipe = client.post(
            "/v1/train", json={**base, "dataset": dataset_ok, "recipe": "no-such-recipe"}
        )
        assert recipe.status_code == 400 and "recipe" in recipe.json()["detail"]
        wrong_type = client.post(
            "/v1/train",
            json={**base, "dataset": dataset_ok, "recipe": {"optim": {"steps": "many"}}},
        )
        assert wrong_type.status_code == 400
        base_missing = client.post(
            "/v1/train", json={**base, "dataset": dataset_ok, "base_model": "nope"}
        )
        assert base_missing.status_code == 400 and "no model named" in base_missing.json()["detail"]
