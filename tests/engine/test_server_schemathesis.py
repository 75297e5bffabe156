"""schemathesis against the served OpenAPI document: every operation, every check.

No 5xx and no contract failure: responses inside the documented schema (status codes,
content types, headers, bodies, each server-sent event), schema-valid requests accepted and
invalid ones refused, `Allow` on a 405 naming the path's methods, nothing deleted that is
still served. Random requests cannot start real work: the paths they carry do not exist, so
the server refuses them with a 400 before any job is queued; one real job, run first, gives
the job operations an id to read, stream and cancel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine.server_harness import (
    Engine,
    engine_session,
    install_model,
    tiny_model_folder,
    wait_for,
)

# The one rejection of a schema-valid request the schema cannot state: a file named in it
# that does not exist, or an AOI whose min is not below its max (400, documented).
CONFIG = """
[parameters]
"path.job_id" = "{job_id}"

[[operations]]
include-name = "POST /v1/segment"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "409"]
# A collection's `rasters` one past its maxItems, each path near its maxLength, is a body
# over the request limit: refused with the documented 413 before it is parsed.
checks.negative_data_rejection.expected-statuses = ["400", "401", "404", "409", "413", "422"]

[[operations]]
include-name = "POST /v1/train"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "409"]

[[operations]]
include-name = "POST /v1/train/preview"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404"]

[[operations]]
include-name = "POST /v1/train/suggest"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404"]
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("engine-data")
    install_model(data_dir, tiny_model_folder(tmp_path_factory.mktemp("model")))
    yield from engine_session(data_dir, "--no-preload")


@pytest.fixture(scope="module")
def finished_job(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The id of a real segment job, done, on a small synthetic GeoTIFF."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    folder = tmp_path_factory.mktemp("job")
    raster = folder / "small.tif"
    pixels = np.random.default_rng(0).integers(1, 255, (3, 128, 128), dtype=np.uint8)
    with rasterio.open(raster, "w", driver="GTiff", width=128, height=128, count=3,
                       dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(500000, 5000000, 0.3, 0.3)) as dst:  # fmt: skip
        dst.write(pixels)
    request = {"raster": str(raster), "prompts": ["car"], "output": str(folder / "o.gpkg"),
               "tile": 128, "overlap": 32, "gsd": "native"}  # fmt: skip
    with engine.client() as client:
        job = client.post("/v1/segment", json=request).raise_for_status().json()
        assert wait_for(client, job["id"], {"done", "failed", "cancelled"})["state"] == "done"
    return job["id"]


def test_the_openapi_document_names_every_operation(engine: Engine) -> None:
    document = httpx.get(f"{engine.base_url}/openapi.json").raise_for_status().json()
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert operations == {
        ("GET", "/v1/health"),
        ("GET", "/v1/models"),
        ("PUT", "/v1/models/active"),
        ("POST", "/v1/segment"),
        ("POST", "/v1/train"),
        ("POST", "/v1/train/preview"),
        ("POST", "/v1/train/suggest"),
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/{job_id}"),
        ("POST", "/v1/jobs/{job_id}/cancel"),
        ("GET", "/v1/jobs/{job_id}/events"),
    }
    segment = document["paths"]["/v1/segment"]["post"]
    assert set(segment["responses"]) == {"202", "400", "401", "409", "413", "422"}
    assert "security" in segment and "security" not in document["paths"]["/v1/health"]["get"]
    # Rules the validators apply are stated too: absolute paths, exactly one AOI shape,
    # exactly one of a raster or a collection's rasters.
    schemas = document["components"]["schemas"]
    segment_body = schemas["SegmentRequest"]
    raster, _ = segment_body["properties"]["raster"]["anyOf"]
    rasters, _ = segment_body["properties"]["rasters"]["anyOf"]
    assert "pattern" in raster and "pattern" in rasters["items"]
    assert [one["required"] for one in segment_body["oneOf"]] == [["raster"], ["rasters"]]
    assert len(schemas["AOI"]["oneOf"]) == 2 and len(schemas["TrainValidation"]["oneOf"]) == 2
    assert {"layers", "rasters", "units", "units_resumed"} <= set(
        schemas["JobResult"]["properties"]
    )
    # A 405 lists every method the path serves (Starlette named only one route's).
    for path, item in document["paths"].items():
        url = engine.base_url + path.replace("{job_id}", "x")
        answer = httpx.request("PATCH", url, headers=engine.auth)
        assert answer.status_code == 405, path
        assert set(answer.headers["allow"].split(", ")) == {m.upper() for m in item}, path


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_contract_failure(
    engine: Engine, finished_job: str, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(job_id=finished_job))
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"{engine.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {engine.token}",
        "--checks",
        "all",
        "--max-examples",
        os.environ.get("SAYMAP_ST_EXAMPLES", "15"),
        "--seed",
        os.environ.get("SAYMAP_ST_SEED", "20240601"),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=480, check=False
    )
    output = run.stdout + run.stderr
    tested = re.search(r"Tested:\s*(\d+)", output)
    cases = re.search(r"Test cases:\s*\n?\s*(\d+) generated", output)
    assert tested and cases, output[-3000:]
    print(f"\nschemathesis: {cases.group(1)} test cases over {tested.group(1)} operations")
    assert "failures" not in output.rsplit("SUMMARY", 1)[-1].lower(), output[-6000:]
    assert run.returncode == 0, output[-6000:]
    assert int(tested.group(1)) == 11
    assert engine.process.poll() is None, "the engine died under schemathesis"
