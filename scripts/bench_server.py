"""Load test of the engine server on loopback: many clients poll while a segment job runs.

Starts a real `saymap serve` in a temporary data folder, keeps a segment job running on a
real raster for the whole window (resubmitting when one finishes), and has N clients poll
`GET /v1/health` and `GET /v1/jobs/{id}` as fast as they can. Prints latency percentiles
and the error count (any non-200 or transport error); `--write-benchmarks` puts the table
into BENCHMARKS.md's "Server" section.

    .venv/bin/python scripts/bench_server.py                   # 50 clients, 30 s
    .venv/bin/python scripts/bench_server.py --clients 10 --seconds 5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
KAMPALA = ROOT.parent / "shared" / "data" / "real" / "kampala" / "kampala_west_rgb.tif"
BENCHMARKS = ROOT / "BENCHMARKS.md"
MODEL_NAME = "bench-tiny"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def build_model(models_dir: Path) -> Path:
    """A `tiny` checkpoint with random weights: the server's latency does not depend on them."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from saymap.engine.model import SaymapConfig, SaymapModel, save_model

    torch.manual_seed(0)
    card = {"name": MODEL_NAME, "note": "random weights, for the server load test"}
    return save_model(SaymapModel(SaymapConfig.named("tiny")), models_dir / MODEL_NAME, card)


class Engine:
    def __init__(self, data_dir: Path) -> None:
        env = {**os.environ, "SAYMAP_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "saymap.engine.cli", "serve", "--port", "0"]
        self.process = subprocess.Popen(
            [*command, "--no-preload"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "saymap engine listening on" in line:
                break
        else:
            raise SystemExit("bench_server: the engine did not start")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()  # drain
        info = json.loads((data_dir / "engine.json").read_text())
        self.base_url = f"http://127.0.0.1:{info['port']}"
        self.headers = {"Authorization": f"Bearer {Path(info['token_path']).read_text().strip()}"}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


class JobKeeper:
    """Keeps one segment job running: submits another as soon as the current one ends."""

    def __init__(self, engine: Engine, raster: Path, out_dir: Path, tile: int) -> None:
        self.engine, self.raster, self.out_dir, self.tile = engine, raster, out_dir, tile
        self.job_id = ""
        self.submitted = 0
        self.running_samples = 0
        self.samples = 0

    async def submit(self, client: httpx.AsyncClient) -> None:
        body = {
            "raster": str(self.raster),
            "prompts": ["red roof"],
            "output": str(self.out_dir / f"load-{self.submitted}.gpkg"),
            "tile": self.tile,
        }
        response = await client.post("/v1/segment", json=body)
        response.raise_for_status()
        self.job_id = response.json()["id"]
        self.submitted += 1

    async def run(self, client: httpx.AsyncClient, until: float) -> None:
        while time.perf_counter() < until:
            job = (await client.get(f"/v1/jobs/{self.job_id}")).raise_for_status().json()
            self.samples += 1
            self.running_samples += job["state"] == "running"
            if job["state"] in {"done", "failed", "cancelled"}:
                if job["state"] != "done":
                    raise SystemExit(f"bench_server: the segment job ended {job['state']}: {job}")
                await self.submit(client)
            await asyncio.sleep(0.2)


class Connection:
    """A bare keep-alive HTTP/1.1 connection: the load generator must cost far less CPU than
    the server it measures (httpx costs about as much per request as the server itself)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.extra}\r\n"
        self.writer.write(request.encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def poll(
    engine: Engine, keeper: JobKeeper, until: float, latencies: dict[str, list[float]]
) -> int:
    """One client: alternately health and job status, each answer checked, as fast as they come."""
    errors = 0
    host, port = engine.base_url.removeprefix("http://").rsplit(":", 1)
    connection = Connection(host, int(port), engine.headers)
    turn = 0
    try:
        while time.perf_counter() < until:
            name, job_id = ("health" if turn % 2 == 0 else "status"), keeper.job_id
            path = "/v1/health" if name == "health" else f"/v1/jobs/{job_id}"
            turn += 1
            start = time.perf_counter()
            try:
                status, body = await connection.get(path)
                elapsed = time.perf_counter() - start
                answer = json.loads(body)
                ok = status == 200 and (
                    answer["status"] == "ok" if name == "health" else answer["id"] == job_id
                )
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
                ok = False
                await connection.close()
                connection = Connection(host, int(port), engine.headers)
            if ok:
                latencies[name].append(elapsed)
            else:
                errors += 1
    finally:
        await connection.close()
    return errors


async def load(engine: Engine, keeper: JobKeeper, clients: int, seconds: float) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {"health": [], "status": []}
    async with httpx.AsyncClient(
        base_url=engine.base_url, headers=engine.headers, timeout=60
    ) as control:
        await keeper.submit(control)
        while (await control.get(f"/v1/jobs/{keeper.job_id}")).json()["state"] != "running":
            await asyncio.sleep(0.1)
        start = time.perf_counter()
        until = start + seconds
        results = await asyncio.gather(
            keeper.run(control, until),
            *(poll(engine, keeper, until, latencies) for _ in range(clients)),
        )
        wall = time.perf_counter() - start
        await control.delete(f"/v1/jobs/{keeper.job_id}")
    errors = sum(r for r in results[1:] if isinstance(r, int))
    summary: dict[str, Any] = {
        "clients": clients,
        "seconds": round(wall, 2),
        "errors": errors,
        "segment_jobs_submitted": keeper.submitted,
        "job_running_fraction": round(keeper.running_samples / max(1, keeper.samples), 3),
    }
    for name, values in latencies.items():
        summary[name] = {
            "requests": len(values),
            "per_s": round(len(values) / wall, 1),
            **{
                f"p{q}_ms": round(1000 * percentile(values, q), 2) if values else None
                for q in (50, 95, 99)
            },
            "max_ms": round(1000 * max(values), 2) if values else None,
        }
    return summary


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    memory = ""
    if hasattr(os, "sysconf"):
        with contextlib.suppress(ValueError, OSError):
            memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    gpu = "no GPU" if not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    return (
        f"{cpu}, {os.cpu_count()} logical cores{memory}, {gpu}, torch {torch.__version__}, "
        f"{platform.system()}"
    )


def _context() -> str:
    """When and where: date, commit, and how busy the machine was before the run."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"
    day = time.strftime("%Y-%m-%d")
    return f"Measured on {day} at commit {commit or '?'}; load average {load} before the run."


def markdown(summary: dict[str, Any], command: str, context: str) -> str:
    rows = "\n".join(
        f"| `{path}` | {summary[name]['requests']} | {summary[name]['per_s']} | "
        f"{summary[name]['p50_ms']} | {summary[name]['p95_ms']} | {summary[name]['p99_ms']} | "
        f"{summary[name]['max_ms']} |"
        for name, path in (("status", "GET /v1/jobs/{id}"), ("health", "GET /v1/health"))
    )
    running = 100 * summary["job_running_fraction"]
    return f"""## Server

Loopback load test (`scripts/bench_server.py`): {summary["clients"]} concurrent clients, each on
its own keep-alive connection, poll `GET /v1/health` and `GET /v1/jobs/{{id}}` in turn for
{summary["seconds"]} s while a segment job runs (kampala 2048×2048, tile 256, the `tiny` model
with random weights; {summary["segment_jobs_submitted"]} job(s) submitted, one running in
{running:.0f} % of the samples). Every answer is checked (status 200, the right body).
Latency is measured by the clients, which run in one asyncio process on the same machine
as the engine and its job, so all three share the cores.

Errors (non-200, wrong body or transport): **{summary["errors"]}**

| call | requests | per s | p50 ms | p95 ms | p99 ms | max ms |
|---|---:|---:|---:|---:|---:|---:|
{rows}

Machine: {machine()}. Command: `{command}`. {context}
"""


def write_section(section: str) -> None:
    """Replace (or append) the "## Server" section of BENCHMARKS.md, leaving the rest as is."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Server\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text.rstrip("\n") + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--raster", type=Path, default=KAMPALA)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--model-dir", type=Path, help="a model folder to serve (else built)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--write-benchmarks", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    if not args.raster.is_file():
        print(f"bench_server: skipped: raster {args.raster} not found", file=sys.stderr)
        return 0

    context = _context()
    work = Path(tempfile.mkdtemp(prefix="saymap-bench-server-"))
    try:
        data_dir, out_dir = work / "data", work / "out"
        (data_dir / "models").mkdir(parents=True)
        out_dir.mkdir()
        if args.model_dir is not None:
            shutil.copytree(args.model_dir, data_dir / "models" / args.model_dir.name)
            name = args.model_dir.name
        else:
            name = build_model(data_dir / "models").name
        (data_dir / "active_model").write_text(name + "\n")
        engine = Engine(data_dir)
        try:
            keeper = JobKeeper(engine, args.raster, out_dir, args.tile)
            summary = asyncio.run(load(engine, keeper, args.clients, args.seconds))
        finally:
            engine.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if os.environ.get("MAKELEVEL"):
        command = "make bench"
    else:
        python = Path(sys.executable)
        shown = ".venv/bin/python" if ROOT / ".venv" in python.parents else "python"
        command = " ".join([shown, *sys.argv])
    if args.json:
        print(json.dumps(summary))
    else:
        print(markdown(summary, command, context))
    if args.write_benchmarks:
        write_section(markdown(summary, command, context))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
