"""POST /v1/train/suggest on a real engine process: sentences about the request's own
label features, each true on the chip training cuts for it; 400 for a dataset the preview
refuses too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from saymap.training.recipe import recipe_from_dict
from saymap.training.suggestions import Suggestion, suggest_sentences
from tests.engine.server_harness import (
    TEST_MODEL,
    Engine,
    engine_session,
    install_model,
    tiny_model_folder,
)
from tests.training.test_suggestions import check_on_training_chips, scene

RECIPE = {"data": {"chip_size": 128, "full_ratio": 1.0}}


def client_of(engine: Engine) -> httpx.Client:
    """A client that waits long enough for an engine niced beside a running training."""
    return httpx.Client(base_url=engine.base_url, headers=engine.auth, timeout=300)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("engine-data")
    install_model(data_dir, tiny_model_folder(tmp_path_factory.mktemp("model")))
    yield from engine_session(data_dir, "--no-preload")


def test_the_engine_suggests_sentences_for_a_generated_layer(
    engine: Engine, tmp_path: Path
) -> None:
    dataset = scene(tmp_path, n=50)
    body = {"base_model": TEST_MODEL, "recipe": RECIPE, "dataset": dataset, "limit": 6}
    with client_of(engine) as client:
        answer = client.post("/v1/train/suggest", json=body)
    assert answer.status_code == 200, answer.text
    got = [Suggestion(**s) for s in answer.json()["suggestions"]]
    assert 1 <= len(got) <= 6 and len({s.feature_id for s in got}) == len(got)
    # The test model's card names no working resolution: chips on the raster's own grid.
    assert got == suggest_sentences(dataset, recipe_from_dict(RECIPE), None, limit=6)
    check_on_training_chips(dataset, got, 128, None)


def test_a_dataset_the_preview_refuses_is_a_400(engine: Engine, tmp_path: Path) -> None:
    dataset = {**scene(tmp_path, n=8), "class_field": "kind"}
    missing = {**dataset, "labels": str(tmp_path / "missing.gpkg")}
    with client_of(engine) as client:
        bad_field = client.post("/v1/train/suggest", json={"recipe": RECIPE, "dataset": dataset})
        assert bad_field.status_code == 400
        assert "has no field 'kind'" in bad_field.json()["detail"]
        gone = client.post("/v1/train/suggest", json={"recipe": RECIPE, "dataset": missing})
        assert gone.status_code == 400 and "does not exist" in gone.json()["detail"]
        zero = client.post(
            "/v1/train/suggest", json={"recipe": RECIPE, "dataset": dataset, "limit": 0}
        )
        assert zero.status_code == 422
