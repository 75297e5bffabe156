"""The plugin's HTTP client against a real engine process (the contract, both ways)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from .conftest import HRO, TEST_CLASSES, TEST_MODEL, EngineProcess


@pytest.fixture
def client(engine: EngineProcess, plugins_dir: Path):
    from saymap.engine_client import EngineClient, read_port_file

    endpoint = read_port_file(engine.data_dir)
    assert endpoint is not None and endpoint.pid == engine.process.pid
    return EngineClient(endpoint)


def test_port_file_health_and_models(client) -> None:
    health = client.health()
    assert health.status == "ok" and health.api_version == "1"
    assert health.device.type in {"cpu", "cuda", "mps"}
    assert health.device.describe()
    models = client.models()
    assert models.active == TEST_MODEL
    assert list(models.active_classes()) == TEST_CLASSES


def test_wrong_token_is_refused(client) -> None:
    from saymap.engine_client import Endpoint, EngineClient
    from saymap.errors import EngineRequestError

    bad = EngineClient(Endpoint(client.endpoint.host, client.endpoint.port, "not-the-token"))
    bad.health()  # health needs no token
    with pytest.raises(EngineRequestError) as caught:
        bad.models()
    assert caught.value.status == 401 and caught.value.detail


def test_segment_job_writes_the_geopackage(client, real_data: Path, tmp_path: Path) -> None:
    from saymap.engine_client import SegmentRequest
    from saymap.jobs import follow_segment

    output = tmp_path / "cars.gpkg"
    request = SegmentRequest(
        raster=str(real_data / HRO),
        prompts=("car",),
        output=str(output),
    )
    seen = []
    job = follow_segment(client, request, seen.append, lambda: False)
    assert job.state == "done" and job.output == str(output)
    assert seen[0].state in {"queued", "running"} and seen[-1].state == "done"
    with sqlite3.connect(output) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info('" + _table(db) + "')")}
    assert {"prompt", "score", "area_m2", "model", "run_id", "created_at", "source"} <= columns
    assert client.job(job.id).state == "done"
    assert any(j.id == job.id for j in client.jobs())


def test_bad_requests_get_a_sentence(client, real_data: Path, tmp_path: Path) -> None:
    from saymap.engine_client import SegmentRequest
    from saymap.errors import EngineRequestError

    with pytest.raises(EngineRequestError) as caught:
        client.job("no-such-job")
    assert caught.value.status == 404
    request = SegmentRequest(
        raster=str(tmp_path / "missing.tif"), prompts=("car",), output=str(tmp_path / "o.gpkg")
    )
    with pytest.raises(EngineRequestError) as caught:
        client.segment(request)
    assert 400 <= caught.value.status < 500 and "missing.tif" in caught.value.detail
    bad_tile = SegmentRequest(
        raster=str(real_data / HRO),
        prompts=("car",),
        output=str(tmp_path / "o.gpkg"),
        tile=100,
    )
    with pytest.raises(EngineRequestError) as caught:
        client.segment(bad_tile)
    assert caught.value.status == 422 and "tile" in caught.value.detail


def _table(db: sqlite3.Connection) -> str:
    return db.execute("SELECT table_name FROM gpkg_contents").fetchone()[0]


def test_client_agrees_with_the_served_openapi_document(client) -> None:
    """The served OpenAPI document is the contract: every field the client sends exists
    there, and every field it reads is one the engine documents."""
    import dataclasses
    import json
    import urllib.request

    from saymap.engine_client import (
        Aoi,
        DeviceInfo,
        Health,
        JobInfo,
        ModelInfo,
        ModelList,
        SegmentRequest,
    )

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(client.endpoint.base_url + "/openapi.json")
    request.add_header("Authorization", f"Bearer {client.endpoint.token}")
    with opener.open(request, timeout=10) as response:
        schemas = json.load(response)["components"]["schemas"]

    def documented(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    def fields(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    assert fields(SegmentRequest) == documented("SegmentRequest")
    assert fields(Aoi) == documented("AOI")
    assert fields(JobInfo) == documented("JobInfo")
    assert fields(Health) == documented("Health")
    assert fields(DeviceInfo) == documented("DeviceInfo")
    assert fields(ModelList) == documented("ModelList")
    assert fields(ModelInfo) == documented("ModelInfo")
