"""schemathesis against the served OpenAPI document: every operation, with the token.

No 5xx and no response outside the documented schema (status codes, content types,
headers, bodies). Random requests cannot start real work: the paths they carry do not
exist, so the server refuses them with a 4xx before any job is queued.
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

from tests.engine.server_harness import Engine, engine_session, install_model, tiny_model_folder

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("engine-data")
    install_model(data_dir, tiny_model_folder(tmp_path_factory.mktemp("model")))
    yield from engine_session(data_dir, "--no-preload")


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
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/{job_id}"),
        ("DELETE", "/v1/jobs/{job_id}"),
        ("GET", "/v1/jobs/{job_id}/events"),
    }
    segment = document["paths"]["/v1/segment"]["post"]
    assert set(segment["responses"]) == {"202", "400", "401", "409", "413", "422"}
    assert "security" in segment and "security" not in document["paths"]["/v1/health"]["get"]


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_response_outside_the_schema(
    engine: Engine, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{engine.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {engine.token}",
        "--checks",
        CHECKS,
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
        command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
    )
    output = run.stdout + run.stderr
    tested = re.search(r"Tested:\s*(\d+)", output)
    cases = re.search(r"Test cases:\s*\n?\s*(\d+) generated", output)
    assert tested and cases, output[-3000:]
    print(f"\nschemathesis: {cases.group(1)} test cases over {tested.group(1)} operations")
    assert run.returncode == 0, output[-6000:]
    assert int(tested.group(1)) == 9
    assert engine.process.poll() is None, "the engine died under schemathesis"
