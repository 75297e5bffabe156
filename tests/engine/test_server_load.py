"""A short run of scripts/bench_server.py: clients polling during a segment job see no error.

The numbers themselves (latency) belong in BENCHMARKS.md via `make bench`, not in a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.engine import generated
from tests.engine.server_harness import ROOT, tiny_model_folder


@pytest.mark.slow
def test_ten_clients_for_five_seconds_see_no_error(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    model = tiny_model_folder(tmp_path_factory.mktemp("model"))
    raster, _ = generated.buildings(tmp_path_factory.mktemp("kampala"))  # 2048 px, as kampala
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_server.py"),
            "--clients", "10",
            "--seconds", "5",
            "--raster", str(raster),
            "--model-dir", str(model),
            "--json",
        ],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\nload: {summary}")
    assert summary["errors"] == 0
    assert summary["clients"] == 10
    assert summary["status"]["requests"] > 0 and summary["health"]["requests"] > 0
    assert summary["segment_jobs_submitted"] >= 1
    assert summary["job_running_fraction"] > 0.5  # the polling happened while a job ran
