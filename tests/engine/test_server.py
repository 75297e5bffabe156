"""The engine server, as the plugin sees it: a real `saymap serve` process driven over HTTP."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyogrio
import pytest
import rasterio
from rasterio.crs import CRS

from tests.engine import generated
from tests.engine.server_harness import (
    ROOT,
    TEST_MODEL,
    Engine,
    engine_session,
    install_model,
    leftovers,
    tiny_model_folder,
    wait_for,
    wait_until_running,
)

PROTECTED = [
    ("GET", "/v1/models", None),
    ("PUT", "/v1/models/active", {"name": TEST_MODEL}),
    ("POST", "/v1/segment", {"raster": "/x.tif", "prompts": ["car"], "output": "/tmp/x.gpkg"}),
    ("POST", "/v1/train", {}),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/jobs/abc", None),
    ("GET", "/v1/jobs/abc/events", None),
    ("POST", "/v1/jobs/abc/cancel", None),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("engine-data")
    install_model(data_dir, tiny_model_folder(tmp_path_factory.mktemp("model")))
    yield from engine_session(data_dir, "--no-preload")


@pytest.fixture(scope="module")
def hro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small 8-bit RGB raster on UTM, standing in for hro_colorado (232 x 383 px, UTM)."""
    return generated.rgb(tmp_path_factory.mktemp("hro") / "hro.tif", "utm", size=320)


@pytest.fixture(scope="module")
def kampala(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2048 px kampala look-alike: big enough that a job at tile 256 runs a while."""
    return generated.buildings(tmp_path_factory.mktemp("kampala"))[0]


def test_port_file_and_token(engine: Engine) -> None:
    info = json.loads((engine.data_dir / "engine.json").read_text())
    assert info["host"] == "127.0.0.1"
    assert info["pid"] == engine.process.pid
    assert info["api_version"] == "1"
    token_path = Path(info["token_path"])
    assert token_path == engine.data_dir / "token"
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    assert len(engine.token) >= 40  # token_urlsafe(32)
    assert f"saymap engine listening on http://127.0.0.1:{info['port']}" in engine.output()


def test_health_needs_no_token(engine: Engine) -> None:
    body = httpx.get(f"{engine.base_url}/v1/health").raise_for_status().json()
    assert body["status"] == "ok" and body["api_version"] == "1"
    assert body["torch_version"].startswith("2.")
    assert body["device"]["type"] in {"cpu", "cuda", "mps"} and body["device"]["reason"]
    assert any(d["type"] == "cpu" for d in body["devices"])
    assert body["active_model"] == TEST_MODEL


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_missing_or_wrong_token_is_401(
    engine: Engine, method: str, path: str, body: dict | None, token: str | None
) -> None:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = httpx.request(method, engine.base_url + path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]


def test_models_lists_the_registered_model_and_sets_the_active_one(engine: Engine) -> None:
    with engine.client() as client:
        listing = client.get("/v1/models").raise_for_status().json()
        assert listing["active"] == TEST_MODEL
        (entry,) = [m for m in listing["models"] if m["name"] == TEST_MODEL]
        assert entry["config_name"] == "tiny" and entry["classes"] == ["car", "building"]
        assert entry["shipped"] is False and Path(entry["path"]).is_dir()
        missing = client.put("/v1/models/active", json={"name": "no-such-model"})
        assert missing.status_code == 404 and TEST_MODEL in missing.json()["detail"]
        traversal = client.put("/v1/models/active", json={"name": "../escape"})
        assert traversal.status_code == 422
        again = client.put("/v1/models/active", json={"name": TEST_MODEL}).raise_for_status()
        assert again.json()["active"] == TEST_MODEL


@pytest.mark.slow
def test_segment_job_writes_a_geopackage_in_its_crs(
    engine: Engine, hro: Path, tmp_path: Path
) -> None:
    output = tmp_path / "cars.gpkg"
    request = {"raster": str(hro), "prompts": ["car", "the road"], "output": str(output)}
    with engine.client() as client:
        job = client.post("/v1/segment", json={**request, "tile": 256}).raise_for_status()
        assert job.status_code == 202
        first = job.json()
        assert first["kind"] == "segment" and first["state"] in {"queued", "running"}
        assert first["request"]["model"] == TEST_MODEL  # the active model, resolved at submit
        done = wait_for(client, first["id"], {"done", "failed", "cancelled"})
    assert done["state"] == "done", done
    assert done["progress"] == 1.0 and done["error"] is None
    assert done["result"]["output"] == str(output)
    assert done["result"]["model"] == TEST_MODEL
    with rasterio.open(hro) as src:
        raster_crs = src.crs
    info = pyogrio.read_info(output)
    assert CRS.from_user_input(info["crs"]) == raster_crs
    assert info["features"] == done["result"]["n_features"]
    assert {"prompt", "score", "area_m2", "model", "run_id", "created_at", "source"} <= set(
        info["fields"]
    )
    assert leftovers(tmp_path, "cars") == ["cars.gpkg"]  # no temp file beside it
    health = httpx.get(f"{engine.base_url}/v1/health").json()
    assert any(m.startswith(f"{TEST_MODEL}@") for m in health["models_loaded"])  # kept warm


def test_a_second_client_sees_the_first_clients_job(
    engine: Engine, hro: Path, tmp_path: Path
) -> None:
    request = {"raster": str(hro), "prompts": ["car"], "output": str(tmp_path / "a.gpkg")}
    with engine.client() as first:
        job = first.post("/v1/segment", json=request).raise_for_status().json()
    with engine.client() as second:
        seen = second.get(f"/v1/jobs/{job['id']}").raise_for_status().json()
        assert seen["id"] == job["id"] and seen["request"]["raster"] == str(hro)
        listed = second.get("/v1/jobs").raise_for_status().json()["jobs"]
        assert listed[0]["id"] == job["id"]  # newest first
        # The event stream ends after the final state, which it reports last.
        with second.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=120) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = [line for line in stream.iter_lines() if line.startswith("data: ")]
        last = json.loads(events[-1].removeprefix("data: "))
        assert last["id"] == job["id"] and last["state"] == "done"


def test_refusals_are_4xx_sentences(engine: Engine, hro: Path, tmp_path: Path) -> None:
    existing = tmp_path / "taken.gpkg"
    existing.write_bytes(b"not yours to overwrite")
    base = {"raster": str(hro), "prompts": ["car"], "output": str(tmp_path / "out.gpkg")}
    cases = [
        ({**base, "raster": "relative.tif"}, 422, "absolute"),
        *(  # on POSIX a backslash path is a name in the engine's working folder
            [({**base, "output": "\\.gpkg"}, 422, "absolute")] if os.name != "nt" else []
        ),
        ({**base, "prompts": []}, 422, "prompt is empty"),
        ({**base, "prompts": ["   "]}, 422, "prompt is empty"),
        ({**base, "output": str(tmp_path / "out.shp")}, 422, "gpkg"),
        ({**base, "unknown": 1}, 422, "unknown"),
        ({**base, "raster": str(tmp_path / "missing.tif")}, 400, "does not exist"),
        ({**base, "raster": str(tmp_path)}, 400, "not a regular file"),
        ({**base, "output": str(tmp_path / "no" / "o.gpkg")}, 400, "does not exist"),
        ({**base, "output": str(existing)}, 409, "already exists"),
        ({**base, "model": "nope"}, 400, "no model named"),
        ({**base, "bands": [9]}, 400, "band"),
        ({**base, "aoi": {"bounds": [0, 0, 1, 1], "crs": "EPSG:4326"}}, 400, "overlap"),
        ({**base, "tile": 256, "overlap": 256}, 400, "overlap"),
        ({**base, "device": "cuda:7"}, 400, "cuda"),
        ({**base, "aoi": {"bounds": [-1e308, -1e308, 1e308, 1e308], "crs": "EPSG:4326"}}, 400,
         "finite"),  # once a GEOSException and a 500
        ({**base, "aoi": {"bounds": [1, 1, 0, 0], "crs": "EPSG:4326"}}, 400, "minx < maxx"),
        ({**base, "raster": str(engine.data_dir / "jobs.sqlite3")}, 400, "data folder"),
        ({**base, "output": str(engine.data_dir / "o.gpkg")}, 400, "data folder"),
    ]  # fmt: skip
    with engine.client() as client:
        for body, code, words in cases:
            response = client.post("/v1/segment", json=body)
            assert response.status_code == code, (body, response.text)
            detail = response.json()["detail"]
            assert isinstance(detail, str) and words in detail.lower(), (body, detail)
        assert existing.read_bytes() == b"not yours to overwrite"
        # The job database is still whole: GDAL never opened it (its SQLite driver would have
        # deleted the -wal file), and the model's default is named only when it was used.
        assert (engine.data_dir / "jobs.sqlite3-wal").exists()
        given = client.post("/v1/segment", json={**base, "tile": 256, "overlap": 256}).json()
        assert "default" not in given["detail"] and "no tile" not in given["detail"]
        implied = client.post("/v1/segment", json={**base, "overlap": 2048}).json()
        assert "no tile was given" in implied["detail"]
        too_big = client.post(
            "/v1/segment",
            content=b'{"x": "' + b"a" * (1 << 21) + b'"}',
            headers={"content-type": "application/json"},
        )
        assert too_big.status_code == 413 and "too large" in too_big.json()["detail"]
        unknown = client.get("/v1/jobs/does-not-exist")
        assert unknown.status_code == 404 and "does-not-exist" in unknown.json()["detail"]
        assert client.post("/v1/jobs/does-not-exist/cancel").status_code == 404


@pytest.mark.slow
def test_cancel_mid_job_leaves_no_file(engine: Engine, kampala: Path, tmp_path: Path) -> None:
    raster = kampala
    output = tmp_path / "roofs.gpkg"
    request = {"raster": str(raster), "prompts": ["red roof"], "output": str(output), "tile": 256}
    with engine.client() as client:
        job = client.post("/v1/segment", json=request).raise_for_status().json()
        running = wait_until_running(client, job["id"])
        assert running["progress"] < 0.5, "the job finished too fast to test a cancel"
        assert leftovers(tmp_path, "roofs"), "a running job writes its temp file beside the output"
        answer = client.post(f"/v1/jobs/{job['id']}/cancel").raise_for_status().json()
        assert answer["state"] in {"running", "cancelled"}
        final = wait_for(client, job["id"], {"done", "failed", "cancelled"}, timeout=60)
    assert final["state"] == "cancelled", final
    assert final["finished_at"] is not None
    assert not output.exists()
    assert leftovers(tmp_path, "roofs") == []


@pytest.mark.slow
def test_a_queued_job_is_cancelled_at_once(engine: Engine, kampala: Path, tmp_path: Path) -> None:
    raster = str(kampala)
    with engine.client() as client:
        first = client.post(
            "/v1/segment",
            json={"raster": raster, "prompts": ["roof"], "output": str(tmp_path / "1.gpkg")},
        ).raise_for_status()
        second = client.post(
            "/v1/segment",
            json={"raster": raster, "prompts": ["roof"], "output": str(tmp_path / "2.gpkg")},
        ).raise_for_status()
        assert second.json()["state"] == "queued"  # one device-heavy job at a time
        same_output = client.post(
            "/v1/segment",
            json={"raster": raster, "prompts": ["car"], "output": str(tmp_path / "1.gpkg")},
        )
        assert same_output.status_code == 409 and "already writing" in same_output.text
        cancelled = client.post(f"/v1/jobs/{second.json()['id']}/cancel").raise_for_status().json()
        assert cancelled["state"] == "cancelled" and cancelled["started_at"] is None
        client.post(f"/v1/jobs/{first.json()['id']}/cancel").raise_for_status()
        wait_for(client, first.json()["id"], {"done", "failed", "cancelled"}, timeout=60)
    assert not (tmp_path / "2.gpkg").exists()


def _serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAYMAP_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "saymap.engine.cli", "serve", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_remote_host_is_refused_without_allow_remote_and_a_token(tmp_path: Path) -> None:
    plain = _serve(tmp_path, "--host", "0.0.0.0")
    assert plain.returncode == 2 and "--allow-remote" in plain.stderr
    no_token = _serve(tmp_path, "--host", "0.0.0.0", "--allow-remote")
    assert no_token.returncode == 2
    assert "--token-file" in no_token.stderr and "network" in no_token.stderr
    short = tmp_path / "short-token"
    short.write_text("abc")
    weak = _serve(tmp_path, "--host", "0.0.0.0", "--allow-remote", "--token-file", str(short))
    assert weak.returncode == 2 and "too short" in weak.stderr
    assert not (tmp_path / "engine.json").exists()


@pytest.mark.slow
def test_clean_shutdown_removes_the_port_file_and_a_second_engine_is_refused(
    tmp_path: Path,
) -> None:
    engine = Engine(tmp_path, "--no-preload")
    try:
        second = _serve(tmp_path, "--no-preload")
        assert second.returncode == 2 and "already serves" in second.stderr
        assert (tmp_path / "engine.json").is_file()
    finally:
        code = engine.stop()
    assert code == 0
    assert not (tmp_path / "engine.json").exists()
