"""POST /v1/segment with `rasters`: a collection as one job on a real `saymap serve` process
(issue 19): the preflight checks every raster, the job reports which raster it is on, the
result names each prompt's layer, and a cancelled collection resumes when sent again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyogrio
import pytest
from rasterio.crs import CRS

from tests.engine import generated
from tests.engine.server_harness import (
    Engine,
    engine_session,
    install_model,
    tiny_model_folder,
    wait_for,
)

FINAL = {"done", "failed", "cancelled"}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("engine-data")
    install_model(data_dir, tiny_model_folder(tmp_path_factory.mktemp("model")))
    yield from engine_session(data_dir, "--no-preload")


@pytest.fixture(scope="module")
def rasters(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small RGB rasters in different CRSs (RD New and UTM), so different groups."""
    folder = tmp_path_factory.mktemp("collection")
    return [
        generated.rgb(folder / "rd.tif", "rd_new", size=256, seed=1),
        generated.rgb(folder / "utm.tif", "utm", size=256, seed=2),
    ]


def test_exactly_one_of_raster_and_rasters(engine: Engine, rasters: list[Path], tmp_path) -> None:
    base = {"prompts": ["car"], "output": str(tmp_path / "o.gpkg")}
    paths = [str(p) for p in rasters]
    cases = [
        ({**base}, 422, "exactly one of raster or rasters"),
        ({**base, "raster": paths[0], "rasters": paths}, 422, "exactly one of raster or rasters"),
        ({**base, "rasters": []}, 422, "rasters"),
        ({**base, "rasters": [paths[0], "relative.tif"]}, 422, "absolute"),
        ({**base, "rasters": [*paths, str(tmp_path / "gone.tif")]}, 400, "gone.tif"),
        ({**base, "rasters": [*paths, str(tmp_path)]}, 400, "not a regular file"),
        ({**base, "rasters": [paths[0], str(engine.data_dir / "jobs.sqlite3")]}, 400,
         "data folder"),
        ({**base, "rasters": paths, "output": paths[1]}, 422, "gpkg"),
        ({**base, "rasters": paths, "output": str(tmp_path / "no" / "o.gpkg")}, 400,
         "does not exist"),
        ({**base, "rasters": paths, "out_crs": "EPSG:999999"}, 400, "999999"),
    ]  # fmt: skip
    with engine.client() as client:
        before = client.get("/v1/jobs").json()["jobs"]
        for body, code, words in cases:
            response = client.post("/v1/segment", json=body)
            assert response.status_code == code, (body, response.text)
            detail = response.json()["detail"]
            assert isinstance(detail, str) and "\n" not in detail, detail
            assert words in detail, (body, detail)
        assert client.get("/v1/jobs").json()["jobs"] == before  # nothing was queued


def test_a_collection_is_one_job_with_a_layer_per_prompt(
    engine: Engine, rasters: list[Path], tmp_path: Path
) -> None:
    output = tmp_path / "both.gpkg"
    request = {
        "rasters": [str(p) for p in rasters],
        "prompts": ["car", "the road"],
        "output": str(output),
        "out_crs": "EPSG:4326",
        "tile": 128,
        "overlap": 32,
        "threshold": 0.05,
        "gsd": "native",
    }
    with engine.client() as client:
        job = client.post("/v1/segment", json=request).raise_for_status().json()
        assert job["request"]["rasters"] == request["rasters"]
        assert job["request"]["raster"] is None
        done = wait_for(client, job["id"], FINAL, timeout=600)
    assert done["state"] == "done", done
    result = done["result"]
    assert result["layers"] == {"car": "saymap_car", "the road": "saymap_the_road"}
    assert result["rasters"] == request["rasters"]
    assert result["units"] == 2 and result["units_resumed"] == 0
    assert sorted(pyogrio.list_layers(output)[:, 0]) == ["saymap_car", "saymap_the_road"]
    total, sources = 0, set()
    for prompt, layer in result["layers"].items():
        table = pyogrio.read_dataframe(output, layer=layer)
        assert CRS.from_user_input(table.crs) == CRS.from_epsg(4326)
        assert set(table["prompt"]) <= {prompt}
        total += len(table)
        sources |= set(table["source"])
    assert total == result["n_features"]
    assert sources <= set(request["rasters"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["both.gpkg"]  # no work folder left


def test_a_single_raster_names_its_one_layer(engine: Engine, rasters: list[Path], tmp_path) -> None:
    """A `raster` request runs as before (every prompt in the layer "saymap"); its result
    says so in the collection's terms."""
    output = tmp_path / "one.gpkg"
    request = {"raster": str(rasters[0]), "prompts": ["car", "the road"], "output": str(output),
               "tile": 128, "overlap": 32, "gsd": "native"}  # fmt: skip
    with engine.client() as client:
        job = client.post("/v1/segment", json=request).raise_for_status().json()
        assert "rasters" not in job["request"] and "out_crs" not in job["request"]
        done = wait_for(client, job["id"], FINAL, timeout=600)
    assert done["state"] == "done", done
    assert done["result"]["layers"] == {"car": "saymap", "the road": "saymap"}
    assert done["result"]["rasters"] == [str(rasters[0])]
    assert list(pyogrio.list_layers(output)[:, 0]) == ["saymap"]


@pytest.mark.slow
def test_progress_names_the_raster_and_a_cancelled_collection_resumes(
    engine: Engine, rasters: list[Path], tmp_path: Path
) -> None:
    big = generated.rgb(tmp_path / "big.tif", "world_mercator", size=1536, seed=3)
    output = tmp_path / "resumed.gpkg"
    request = {"rasters": [str(rasters[0]), str(big)], "prompts": ["car"],
               "output": str(output), "tile": 256, "batch_size": 1, "gsd": "native"}  # fmt: skip
    with engine.client() as client:
        job = client.post("/v1/segment", json=request).raise_for_status().json()
        on_second = _wait_for_message(client, job["id"], "raster 2 of 2")
        assert 0.0 < on_second["progress"] < 0.5, "the second raster finished too fast to cancel"
        client.post(f"/v1/jobs/{job['id']}/cancel").raise_for_status()
        cancelled = wait_for(client, job["id"], FINAL, timeout=120)
        assert cancelled["state"] == "cancelled", cancelled
        assert "send the same request again to resume" in cancelled["message"]
        assert not output.exists()

        again = client.post("/v1/segment", json=request).raise_for_status().json()
        done = wait_for(client, again["id"], FINAL, timeout=900)
    assert done["state"] == "done", done
    assert done["result"]["units"] == 2 and done["result"]["units_resumed"] == 1
    assert pyogrio.read_info(output, layer="saymap")["features"] == done["result"]["n_features"]


def _wait_for_message(client: httpx.Client, job_id: str, words: str, timeout: float = 600) -> dict:
    """Poll until the running job's message holds `words`."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["state"] == "running" and words in job["message"]:
            return job
        if job["state"] not in ("queued", "running") or time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never said {words!r}: {job}")
        time.sleep(0.05)
