"""What a hostile page, another local user or a careless request can learn or break, against
a real `saymap serve` on 127.0.0.1: Host checks, private files, token files, recipe paths."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine import generated
from tests.engine.server_harness import (
    ROOT,
    Engine,
    engine_session,
    install_model,
    tiny_model_folder,
    wait_for,
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("engine-data")
    os.chmod(data_dir, 0o755)  # as a fresh user data folder would be under umask 022
    install_model(data_dir, tiny_model_folder(tmp_path_factory.mktemp("model")))
    yield from engine_session(data_dir, "--no-preload")


def _raw_get(port: int, host_header: str) -> int:
    """GET /v1/health with exactly this Host header (as a browser on a rebound name sends)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        request = f"GET /v1/health HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("latin-1"))
        status_line = sock.makefile("rb").readline().decode("latin-1")
    return int(status_line.split()[1])


def test_only_loopback_host_names_with_the_port_are_answered(engine: Engine) -> None:
    port = engine.port
    for good in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert _raw_get(port, good) == 200, good
    for bad in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1:{port + 1}",
                "127.0.0.1", f"127.0.0.1.attacker.example:{port}", ""):  # fmt: skip
        assert _raw_get(port, bad) == 400, bad


def test_the_data_folder_and_job_database_are_private(engine: Engine) -> None:
    with engine.client() as client:  # a write, so the -wal and -shm files exist
        client.put("/v1/models/active", json={"name": "no-such-model"})
    assert stat.S_IMODE(engine.data_dir.stat().st_mode) == 0o700
    for name in ("jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm", "token", "engine.json"):
        path = engine.data_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_a_malformed_body_without_a_token_is_401_not_422(engine: Engine) -> None:
    for path in ("/v1/segment", "/v1/train", "/v1/train/preview", "/v1/models/active"):
        method = "PUT" if path.endswith("active") else "POST"
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = httpx.request(
                method,
                engine.base_url + path,
                content=b"{not json",
                headers={"content-type": "application/json", **headers},
            )
            assert response.status_code == 401, (path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    with engine.client() as client:  # with the token, the same body is the caller's error
        bad = client.post("/v1/segment", content=b"{not json",
                          headers={"content-type": "application/json"})  # fmt: skip
        assert bad.status_code == 422


def test_a_recipe_path_to_any_toml_file_echoes_nothing_from_it(
    engine: Engine, tmp_path: Path
) -> None:
    secret = tmp_path / "settings.toml"
    secret.write_text('api_key_name = "hunter2"\n[database]\npassword_field = "s3cret"\n')
    nearly = tmp_path / "nearly.toml"
    nearly.write_text('[optim]\nsteps = 4\n[hidden_section]\nprivate_key_path = "x"\n')
    raster, labels = generated.buildings(tmp_path / "kampala", size=512, per_side=4)
    dataset = {"rasters": [str(raster)], "labels": str(labels), "class_field": "class"}
    with engine.client() as client:
        for recipe in (str(secret), str(nearly), str(labels)):
            response = client.post(
                "/v1/train", json={"name": "leak-test", "recipe": recipe, "dataset": dataset}
            )
            assert response.status_code == 400, response.text
            detail = response.json()["detail"]
            assert "recipe" in detail
            for word in ("api_key_name", "hunter2", "database", "password_field", "s3cret",
                         "hidden_section", "private_key_path", "FeatureCollection"):  # fmt: skip
                assert word not in detail, detail
            preview = client.post(
                "/v1/train/preview", json={"recipe": recipe, "dataset": dataset}
            )  # the preview reads the same recipe: it refuses the same way
            assert preview.status_code == 400 and preview.json()["detail"] == detail
        relative = client.post(
            "/v1/train", json={"name": "leak-test", "recipe": "../pyproject", "dataset": dataset}
        )
        assert relative.status_code == 400 and "shipped" in relative.json()["detail"]


def _serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAYMAP_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "saymap.engine.cli", "serve", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_allow_remote_refuses_a_token_file_others_can_read_or_a_weak_token(tmp_path: Path) -> None:
    token_file = tmp_path / "shared-token"
    token_file.write_text("x" * 40 + "\n")  # 40 characters, but no secret
    token_file.chmod(0o600)
    remote = ("--host", "0.0.0.0", "--allow-remote", "--token-file", str(token_file))
    weak = _serve(tmp_path / "data", *remote)
    assert weak.returncode == 2 and "too short or too regular" in weak.stderr
    token_file.write_text(os.urandom(32).hex() + "\n")  # 32 random bytes
    token_file.chmod(0o644)
    readable = _serve(tmp_path / "data", *remote)
    assert readable.returncode == 2 and "chmod 600" in readable.stderr
    assert not (tmp_path / "data" / "engine.json").exists()


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


@pytest.mark.slow
def test_a_job_on_a_full_disk_says_so_and_where(engine: Engine, tmp_path: Path) -> None:
    """A real full filesystem (a 64 KiB tmpfs; needs root, skipped otherwise): the job fails
    saying the disk is full and which output, not "internal error ... please report it"."""
    small = tmp_path / "small-disk"
    if not _mount_tmpfs(small, "64k"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        output = small / "trees.gpkg"
        request = {
            "raster": str(generated.with_white_nodata(tmp_path / "osbs.tif")),
            "prompts": ["tree"],
            "output": str(output),
            "threshold": 0.01,
            "gsd": "native",
        }
        with engine.client() as client:
            job = client.post("/v1/segment", json=request).raise_for_status().json()
            final = wait_for(client, job["id"], {"done", "failed", "cancelled"}, timeout=300)
        assert final["state"] == "failed", final
        assert "disk is full" in final["error"] and str(output) in final["error"], final
        assert "internal error" not in final["error"]
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)
