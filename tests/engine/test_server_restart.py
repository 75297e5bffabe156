"""kill -9 of the engine mid-job, then a restart: the job is failed, no partial file stays,
and files the user wrote meanwhile at or beside the job's output are never touched."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.engine import generated
from tests.engine.server_harness import (
    Engine,
    install_model,
    leftovers,
    tiny_model_folder,
    wait_for,
    wait_until_running,
)


@pytest.mark.slow
def test_kill_9_mid_job_then_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("engine-data")
    out_dir = tmp_path_factory.mktemp("out")
    install_model(data_dir, tiny_model_folder(tmp_path_factory.mktemp("model")))
    rasters = tmp_path_factory.mktemp("rasters")
    kampala, _ = generated.buildings(rasters / "kampala")  # 2048 px: still running when killed
    output = out_dir / "roofs.gpkg"
    # A file of the user's that only looks like ours: older than the job, it must survive.
    bystander = out_dir / "roofs.gpkg-notes.txt"
    bystander.write_text("mine")

    first = Engine(data_dir, "--no-preload")
    try:
        with first.client() as client:
            job = (
                client.post(
                    "/v1/segment",
                    json={
                        "raster": str(kampala),
                        "prompts": ["roof"],
                        "output": str(output),
                        "tile": 256,
                    },
                )
                .raise_for_status()
                .json()
            )
            wait_until_running(client, job["id"])
            partial = [n for n in leftovers(out_dir, "roofs") if n.startswith(".roofs.")]
            assert partial, "the job should have a partial file on disk when it is killed"
    finally:
        first.kill()  # SIGKILL: no shutdown code runs
    assert first.process.returncode == -9
    assert (data_dir / "engine.json").exists()  # stale: its pid is dead
    # Before the restart the user writes the output themselves (e.g. with the CLI) and a
    # notes file beside it: newer than the job, named like its output. Both must survive.
    output.write_bytes(b"the user's own GeoPackage")
    bystander.write_text("newer notes")

    second = Engine(data_dir, "--no-preload")
    try:
        with second.client() as client:
            after = client.get(f"/v1/jobs/{job['id']}").raise_for_status().json()
            assert after["state"] == "failed"
            assert after["error"] == "engine restarted"
            assert after["finished_at"] is not None
            assert leftovers(out_dir, "roofs") == sorted([bystander.name, output.name])
            assert bystander.read_text() == "newer notes"
            assert output.read_bytes() == b"the user's own GeoPackage"

            hro = generated.rgb(rasters / "hro.tif", "utm", size=320)  # small, as hro_colorado
            nxt = (
                client.post(
                    "/v1/segment",
                    json={
                        "raster": str(hro),
                        "prompts": ["car"],
                        "output": str(output),
                        "overwrite": True,
                    },
                )
                .raise_for_status()
                .json()
            )
            done = wait_for(client, nxt["id"], {"done", "failed", "cancelled"})
            assert done["state"] == "done", done
            assert output.exists()
            history = [j["id"] for j in client.get("/v1/jobs").raise_for_status().json()["jobs"]]
            assert history[:2] == [nxt["id"], job["id"]]
    finally:
        assert second.stop() == 0


@pytest.mark.slow
def test_a_restart_right_after_kill_9_is_not_blocked_by_the_zombie(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Until its parent reaps it a killed engine is a zombie whose pid still exists; the
    port file's engine must answer on its port before it blocks a new one."""
    data_dir = tmp_path_factory.mktemp("engine-data")
    first = Engine(data_dir, "--no-preload")
    os.kill(first.process.pid, signal.SIGKILL)  # not reaped: a zombie, as under a supervisor
    time.sleep(1)
    os.kill(first.process.pid, 0)  # the stale pid still "exists"
    second = Engine(data_dir, "--no-preload")
    try:
        assert "listening on" in second.output(), second.output()
        with second.client() as client:
            assert client.get("/v1/jobs").status_code == 200
        third = Engine(data_dir, "--no-preload")  # a live, answering engine still blocks
        assert third.process.wait(30) == 2 and "already serves" in third.output()
    finally:
        assert second.stop() == 0
        first.process.wait(10)
