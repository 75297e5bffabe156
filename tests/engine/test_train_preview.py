"""POST /v1/train/preview: which sentences and chips a train job would use, decided by the
trainer's own split. The wizard counts sentences from it, so it must agree with training
exactly: every sentence the preview calls "train" is in the trainer's pool of full
expressions, and every one it calls "validation" is in the validation set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import shapely

from saymap.training.data_sources import datasets_from_layers
from saymap.training.preview import preview_request
from saymap.training.recipe import recipe_from_dict
from saymap.training.wrel import split_pools
from tests.engine.generated import buildings
from tests.engine.server_harness import (
    TEST_MODEL,
    Engine,
    engine_session,
    install_model,
    tiny_model_folder,
    wait_for,
)

LRB_WREL_PROBLEM = "LRB-WREL stage 1 needs full expressions (sentences)"
# instance_id of the look-alike's buildings: west (2), east side (5, 8), and more.
PICKED = (2, 5, 8, 12, 20, 33, 41, 57)


@pytest.fixture(scope="module")
def kampala(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A generated look-alike of kampala_west (web Mercator, 64 buildings, ids 5 and 8 in
    the east), so the preview is tested without ../shared."""
    raster, labels = buildings(tmp_path_factory.mktemp("kampala"))
    features = json.loads(labels.read_text())["features"]
    geometries = {
        f["properties"]["instance_id"]: shapely.geometry.shape(f["geometry"]) for f in features
    }
    bounds = shapely.union_all(list(geometries.values())).bounds
    return {
        "rasters": [str(raster)],
        "labels": str(labels),
        "class_field": "class",
        "sentences": [
            {"sentence": f"the building number {i}", "wkt": geometries[i].wkt}
            for i in PICKED
            if i in geometries
        ],
        "extent": bounds,
    }


def strip(extent: tuple[float, ...], share: float, side: str) -> dict:
    """The wizard's validation strip: the last `share` of the extent on one side."""
    x0, y0, x1, y1 = extent
    box = {
        "east": (x1 - share * (x1 - x0), y0, x1, y1),
        "west": (x0, y0, x0 + share * (x1 - x0), y1),
        "south": (x0, y0, x1, y0 + share * (y1 - y0)),
        "north": (x0, y1 - share * (y1 - y0), x1, y1),
    }[side]
    return {"area": {"bounds": list(box), "crs": "EPSG:3857"}}


def dataset(kampala: dict, validation: dict | None, sentences: list | None = None) -> dict:
    body = {k: v for k, v in kampala.items() if k != "extent"}
    if sentences is not None:
        body["sentences"] = sentences
    return {**body, "validation": validation}


def recipe(chip: int, method: str = "lrb-wrel") -> dict:
    return {
        "data": {"chip_size": chip, "full_ratio": 1.0, "max_val_samples": 8},
        "optim": {"steps": 4, "batch_size": 2, "warmup_steps": 1},
        "wrel": {"method": method, "bank_steps": 2},
        "run": {"checkpoint_every": 100, "eval_every": 3},
    }


@pytest.mark.parametrize(
    ("chip", "validation"),
    [
        (128, ("east", 0.2)),
        (256, ("east", 0.2)),
        (128, ("east", 0.3)),
        (256, ("west", 0.3)),
        (128, ("south", 0.25)),
        (256, ("fraction", 0.2)),
        (256, ("fraction", 0.3)),  # all WKT sentences share one hash key: all validate
        (256, None),
    ],
)
def test_the_preview_names_exactly_the_sentences_training_uses(
    kampala: dict, chip: int, validation: tuple[str, float] | None
) -> None:
    if validation is None:
        spec = None
    elif validation[0] == "fraction":
        spec = {"fraction": validation[1]}
    else:
        spec = strip(kampala["extent"], validation[1], validation[0])
    body = dataset(kampala, spec)
    chosen = recipe_from_dict(recipe(chip))
    preview = preview_request(body, chosen, None)

    train, val = datasets_from_layers(body, chip_size=chip)  # what a job trains on
    pools = split_pools(train, chosen.data.full_ratio, chosen.run.seed)
    records = train.dataset.records
    trained = {records[train.indices[i]].sample_id for i in pools.full}
    validated = {records[k].sample_id for k in val.indices} if val is not None else set()
    assert len(preview.sentences) == len(body["sentences"])
    for item, fate in enumerate(preview.sentences, start=1):
        ids = [r.sample_id for r in records if r.sample_id.endswith(f"/geometry{item}/sentence")]
        assert len(ids) == 1
        assert (fate.fate == "train") == (ids[0] in trained), (item, fate)
        assert (fate.fate == "validation") == (ids[0] in validated), (item, fate)
        assert fate.class_name == "building"
    assert preview.train["full"] == len(trained)
    assert preview.train["weak"] + preview.train["full"] == len(train)
    assert preview.validation["weak"] + preview.validation["full"] == (
        len(val) if val is not None else 0
    )
    # LRB-WREL needs a training sentence; with one, nothing stands in the way.
    if preview.train["full"]:
        assert preview.problem is None
    else:
        assert preview.problem.startswith(LRB_WREL_PROBLEM)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("engine-data")
    install_model(data_dir, tiny_model_folder(tmp_path_factory.mktemp("model")))
    yield from engine_session(data_dir, "--no-preload")


@pytest.mark.slow
def test_sentences_only_in_the_validation_area_are_the_problem_the_job_fails_with(
    engine: Engine, kampala: dict
) -> None:
    """The issue's case: every sentence inside the validation strip. The preview says so
    and names the trainer's own reason; a job posted anyway fails with that very reason."""
    east = [s for s in kampala["sentences"] if s["sentence"].endswith(("5", "8"))]
    body = dataset(kampala, strip(kampala["extent"], 0.3, "east"), east)
    with engine.client() as client:
        answer = client.post(
            "/v1/train/preview",
            json={"base_model": TEST_MODEL, "recipe": recipe(128), "dataset": body},
        )
        assert answer.status_code == 200, answer.text
        preview = answer.json()
        assert [s["fate"] for s in preview["sentences"]] == ["validation", "validation"]
        assert preview["train"]["full"] == 0 and preview["validation"]["full"] == 2
        assert preview["problem"].startswith(LRB_WREL_PROBLEM)
        # naive WREL trains on class names alone: nothing stands in its way
        naive = client.post(
            "/v1/train/preview",
            json={"base_model": TEST_MODEL, "recipe": recipe(128, "naive-wrel"), "dataset": body},
        ).json()
        assert naive["problem"] is None and naive["method"] == "naive-wrel"

        request = {"name": "never-trains", "base_model": TEST_MODEL, "recipe": recipe(128),
                   "dataset": body}  # fmt: skip
        job = client.post("/v1/train", json=request).raise_for_status().json()
        done = wait_for(client, job["id"], {"done", "failed", "cancelled"}, timeout=300)
        assert done["state"] == "failed"
        assert preview["problem"] in done["error"]


def test_a_preview_refuses_what_a_train_request_refuses(engine: Engine, tmp_path: Path) -> None:
    body = {
        "rasters": [str(tmp_path / "missing.tif")],
        "labels": str(tmp_path / "missing.geojson"),
        "class_field": "class",
    }
    with engine.client() as client:
        missing = client.post("/v1/train/preview", json={"recipe": {}, "dataset": body})
        assert missing.status_code == 400 and "does not exist" in missing.json()["detail"]
        unknown = client.post(
            "/v1/train/preview", json={"base_model": "no-such", "recipe": {}, "dataset": body}
        )
        assert unknown.status_code == 400 and "no-such" in unknown.json()["detail"]
