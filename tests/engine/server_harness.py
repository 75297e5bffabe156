"""A real engine for tests: `saymap serve` as a subprocess on 127.0.0.1, driven over HTTP.

The model the tests serve is the `tiny` configuration with random weights, saved as a
real checkpoint folder (config.json + model.safetensors + model_card.json): the server,
the registry and the pipeline run for real; only segmentation quality is not tested here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
TEST_MODEL = "test-tiny"
_model_lock = threading.Lock()
_model_dir: Path | None = None


def tiny_model_folder(base: Path) -> Path:
    """A tiny random-weight checkpoint, built once per test session under `base`."""
    global _model_dir
    with _model_lock:
        if _model_dir is None or not _model_dir.is_dir():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import torch

            from saymap.engine.model import SaymapConfig, SaymapModel, save_model

            torch.manual_seed(0)
            model = SaymapModel(SaymapConfig.named("tiny"))
            card = {"name": TEST_MODEL, "classes": ["car", "building"], "note": "random weights"}
            _model_dir = save_model(model, base / TEST_MODEL, card)
        return _model_dir


def install_model(data_dir: Path, model_folder: Path, *, active: bool = True) -> None:
    """Put a model into an engine data folder as a user model (and make it the active one)."""
    target = data_dir / "models" / model_folder.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copytree(model_folder, target)
    if active:
        (data_dir / "active_model").write_text(model_folder.name + "\n")


class Engine:
    """One `saymap serve` process; `client()` gives an httpx client carrying its token."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        env = {
            **os.environ,
            "SAYMAP_DATA_DIR": str(data_dir),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "-m", "saymap.engine.cli", "serve", "--port", "0", *extra]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read_output, daemon=True).start()
        if not self._ready.wait(90):
            self.kill()
            raise RuntimeError("engine did not start:\n" + "".join(self.lines))
        info = json.loads((data_dir / "engine.json").read_text())
        self.port: int = info["port"]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = Path(info["token_path"]).read_text().strip()

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "saymap engine listening on" in line:
                self._ready.set()
        self._ready.set()  # the process ended: let the waiter see it

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.auth, timeout=30, **kwargs)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)

    def output(self) -> str:
        return "".join(self.lines)


def wait_for(client: httpx.Client, job_id: str, states: set[str], timeout: float = 120) -> dict:
    """Poll a job until its state is one of `states`."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job}")
        time.sleep(0.1)


def wait_until_running(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    """Until the job has run at least one batch (progress > 0), so it is mid-way."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["state"] == "running" and job["progress"] > 0:
            return job
        if job["state"] not in ("queued", "running") or time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never got going: {job}")
        time.sleep(0.05)


def leftovers(folder: Path, stem: str) -> list[str]:
    """Files a segment job writing `<stem>.gpkg` in `folder` might have left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((f".{stem}.", stem)))


def engine_session(data_dir: Path, *extra: str) -> Iterator[Engine]:
    engine = Engine(data_dir, *extra)
    try:
        yield engine
    finally:
        if engine.process.poll() is None:
            try:
                engine.stop(30)
            except subprocess.TimeoutExpired:
                engine.kill()
