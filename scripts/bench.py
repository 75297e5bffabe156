#!/usr/bin/env python
"""Benchmarks that print numbers (never timed unit tests). `make bench` runs them.

Memory (issue 3): the same pipeline, tile size and model on a generated 16,000 × 16,000 RGB
GeoTIFF and on a 2,000 × 2,000 one, each in its own subprocess, which reports its own peak
RSS (VmHWM). Requirement: large ≤ 1.25 × small. The rasters are generated window by window
(never held in memory) and cached under out/bench/.

The model is the real `tiny` SayMap model with random weights when `saymap.engine.model`
provides it (weights do not change memory or speed), else the deterministic brightness
segmenter; the table says which.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "out" / "bench"
BENCHMARKS = ROOT / "BENCHMARKS.md"
MEMORY_LIMIT = 1.25
GENERATOR_VERSION = "1"  # bump when the generated pattern changes


# ---------------------------------------------------------------- generated rasters


def _pattern(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(3, h, w) uint8: dim ground in soft stripes, and a bright 48 px square every 1000 px."""
    y, x = np.meshgrid(rows, cols, indexing="ij")
    ground = 70 + 40 * np.sin(x / 97.0) * np.cos(y / 131.0)
    bright = ((x % 1000) < 48) & ((y % 1000) < 48) & (x >= 500) & (y >= 500)
    bands = [ground + 10 * (i - 1) for i in range(3)]
    image = np.stack([np.where(bright, 250, band) for band in bands])
    return image.astype(np.uint8)


def generated_raster(size: int) -> Path:
    """A size × size RGB GeoTIFF (tiled, deflate, UTM 33N, 0.5 m), written a strip at a time."""
    path = CACHE / f"rgb_{size}.tif"
    if path.exists():
        with rasterio.open(path) as ds:
            if ds.tags().get("saymap_bench") == GENERATOR_VERSION and ds.width == size:
                return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.tif")
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8",
        "crs": "EPSG:32633", "transform": Affine(0.5, 0, 400000, 0, -0.5, 5000000),
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    print(f"bench: generating {path} ({size} x {size}, by 512-row strips)", flush=True)
    with rasterio.open(partial, "w", **profile) as dst:
        cols = np.arange(size)
        for row in range(0, size, 512):
            height = min(512, size - row)
            dst.write(
                _pattern(np.arange(row, row + height), cols), window=Window(0, row, size, height)
            )
        dst.update_tags(saymap_bench=GENERATOR_VERSION)
    os.replace(partial, path)
    return path


# ---------------------------------------------------------------- one run (child process)


def sparse_raster(size: int) -> Path:
    """A size × size sparse RGB GeoTIFF (SPARSE_OK: only a few 512 px squares written, the
    rest never stored): the mostly empty raster of issue 16's audit, a few MB on disk."""
    path = CACHE / f"sparse_{size}.tif"
    if path.exists():
        with rasterio.open(path) as ds:
            if ds.tags().get("saymap_bench") == GENERATOR_VERSION and ds.width == size:
                return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(
        tmp, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8",
        crs="EPSG:32633", transform=Affine(0.5, 0, 500_000.0, 0, -0.5, 5_200_000.0),
        tiled=True, blockxsize=256, blockysize=256, SPARSE_OK=True, BIGTIFF="YES",
    ) as dst:  # fmt: skip
        for k in range(1, 5):
            at = size * k // 5
            dst.write(_pattern(np.arange(at, at + 512), np.arange(at, at + 512)),
                      window=Window(at, at, 512, 512))  # fmt: skip
        dst.update_tags(saymap_bench=GENERATOR_VERSION)
    tmp.replace(path)
    return path


def _model(choice: str, tile: int):
    if choice in ("auto", "tiny"):
        try:
            from saymap.engine.model import SaymapConfig, SaymapModel
        except ImportError:
            if choice == "tiny":
                raise
        else:
            model = SaymapModel(SaymapConfig.named("tiny", tile_size=tile))
            return model, "tiny (random weights)"
    sys.path.insert(0, str(ROOT))  # the brightness segmenter is a test double, in tests/
    from tests.engine.brightness import BrightnessConfig, BrightnessSegmenter

    return BrightnessSegmenter(BrightnessConfig(tile_size=tile)), "brightness segmenter"


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM belongs to the address space, which exec replaces;
    ru_maxrss would also count the parent's memory copied before exec (Linux)."""
    try:
        status = Path("/proc/self/status").read_text()
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if found:
            return int(found.group(1)) / 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def run_child(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from saymap.engine.infer import SegmentOptions, segment_raster

    model, label = _model(args.model, args.tile)
    options = SegmentOptions(
        tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, device=args.device,
        overwrite=True, gsd=args.gsd,
    )  # fmt: skip
    model.card = {"gsd_m": float(args.gsd)} if args.gsd not in (None, "native") else {}
    started = time.perf_counter()
    if args.cancel_after is not None:
        return _cancel_child(args, model, options, started)
    result = segment_raster(args.raster, ["bright square"], args.output, model=model,
                            options=options)  # fmt: skip
    print(json.dumps({
        "model": label,
        "tiles": result.tiles,
        "seconds": time.perf_counter() - started,
        "features": result.n_features,
        "device": result.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "peak_rss_mib": peak_rss_mib(),
    }))  # fmt: skip
    return 0


def _cancel_child(args: argparse.Namespace, model, options, started: float) -> int:
    """Run until `cancel_after` seconds, cancel, and report how long stopping took."""
    import threading

    from saymap.engine.errors import Cancelled
    from saymap.engine.infer import segment_raster

    cancel = threading.Event()
    state = {"done": 0, "total": 0}

    def progress(done: int, total: int, _message: str) -> None:
        state.update(done=done, total=total)

    timer = threading.Timer(args.cancel_after, cancel.set)
    timer.start()
    try:
        segment_raster(args.raster, ["bright square"], args.output, model=model,
                       options=options, progress=progress, cancel=cancel)  # fmt: skip
        stopped = None
    except Cancelled:
        stopped = time.perf_counter() - started - args.cancel_after
    print(json.dumps({"cancel_to_stop_s": stopped, "tiles_done": state["done"],
                      "tiles": state["total"], "peak_rss_mib": peak_rss_mib()}))  # fmt: skip
    return 0


def measure(raster: Path, args: argparse.Namespace) -> dict:
    """Run one segmentation in a fresh child process, which reports its own peak RSS."""
    command = [
        sys.executable, __file__, "_child", "--raster", str(raster), "--model", args.model,
        "--tile", str(args.tile), "--overlap", str(args.overlap),
        "--batch-size", str(args.batch_size), "--device", args.device,
        "--output", str(CACHE / f"{raster.stem}.gpkg"),
        *(["--gsd", str(args.gsd)] if args.gsd else []),
    ]  # fmt: skip
    child = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if child.returncode != 0:
        raise SystemExit(f"bench: the run on {raster} failed (exit {child.returncode})")
    row = json.loads(child.stdout.strip().splitlines()[-1])
    row["raster"] = raster.name
    with rasterio.open(raster) as ds:
        row["size"] = f"{ds.width} x {ds.height}"
    row["tiles_per_s"] = row["tiles"] / row["seconds"]
    return row


def measure_cancel(raster: Path, args: argparse.Namespace, after: float = 20.0) -> dict:
    """Cancel a run on `raster` after `after` seconds in a child; its stop time and peak."""
    command = [
        sys.executable, __file__, "_child", "--raster", str(raster), "--model", args.model,
        "--tile", str(args.tile), "--overlap", str(args.overlap),
        "--batch-size", str(args.batch_size), "--device", args.device,
        "--output", str(CACHE / f"{raster.stem}-cancel.gpkg"), "--cancel-after", str(after),
        *(["--gsd", str(args.gsd)] if args.gsd else []),
    ]  # fmt: skip
    child = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    return json.loads(child.stdout.strip().splitlines()[-1])


def replace_section(title: str, text: str) -> None:
    """Put `text` in BENCHMARKS.md in place of the section headed `title` (or at the end)."""
    current = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    section = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if section.search(current):
        current = section.sub(lambda _: text.rstrip() + "\n\n", current)
    else:
        current = current.rstrip() + "\n\n" + text
    BENCHMARKS.write_text(current.rstrip() + "\n")


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


MEMORY_INTRO = (
    "## Memory\n\n"
    "Peak resident memory of one `segment_raster` run per raster, each in its own process "
    "(its VmHWM), same tile size and model for both rasters. Requirement: "
    f"the large run peaks at no more than {MEMORY_LIMIT} × the small one "
    "(`make bench`: 16,000² against 2,000²). One table per model; a run replaces its own.\n"
)


def memory_table(rows: list[dict], ratio: float, command: str) -> str:
    lines = [
        f"### {rows[0]['model']}",
        "",
        "| raster | size | device | tiles | seconds | tiles/s | peak RSS (MiB) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['raster']} | {r['size']} | {r['device']} | {r['tiles']} | "
            f"{r['seconds']:.1f} | {r['tiles_per_s']:.2f} | {r['peak_rss_mib']:.0f} |"
        )
    for r in rows:
        if "cancel" in r and r["cancel"].get("cancel_to_stop_s") is not None:
            c = r["cancel"]
            lines += ["", f"Cancel on {r['raster']}: asked after 20 s ({c['tiles_done']} of "
                      f"{c['tiles']} tiles done), stopped **{c['cancel_to_stop_s']:.2f} s** "
                      f"later; peak RSS {c['peak_rss_mib']:.0f} MiB."]  # fmt: skip
    verdict = "meets" if ratio <= MEMORY_LIMIT else "FAILS"
    lines += [
        "",
        f"Ratio largest/smallest: **{ratio:.3f}** ({verdict} the ≤ {MEMORY_LIMIT} requirement).",
        f"Machine: {machine()}; torch {rows[0]['torch']} ({rows[0]['threads']} threads); "
        f"Python {platform.python_version()}; {dt.date.today().isoformat()}.",
        f"Command: `{command}`",
        "",
    ]
    return "\n".join(lines)


def update_benchmarks(table: str) -> None:
    """Put `table` in the Memory section of BENCHMARKS.md, replacing the table for the same
    model; other models' tables and other sections are left as they are."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    section = re.compile(r"^## Memory\n.*?(?=^## |\Z)", re.S | re.M)
    found = section.search(text)
    body = found.group(0) if found else MEMORY_INTRO
    heading = table.splitlines()[0]
    own = re.compile(rf"^{re.escape(heading)}\n.*?(?=^### |^## |\Z)", re.S | re.M)
    body = (
        own.sub(lambda _: table + "\n", body)
        if own.search(body)
        else body.rstrip() + "\n\n" + table + "\n"
    )
    if found:
        text = text[: found.start()] + body + text[found.end() :]
    else:
        text = text.rstrip() + "\n\n" + body
    BENCHMARKS.write_text(text.rstrip() + "\n")


def run_memory(args: argparse.Namespace) -> int:
    sizes = sorted(args.sizes or [args.small, args.large])
    rasters = [generated_raster(size) for size in sizes]
    stride = args.tile - args.overlap
    for raster, size in zip(rasters, sizes, strict=True):
        per_side = 1 + max(0, -(-(size - args.tile) // stride))
        print(f"bench: {raster.name}: {per_side**2} tiles of {args.tile} px", flush=True)
    rows = [measure(raster, args) for raster in rasters]
    if args.sparse:
        rows.append(measure(sparse_raster(args.sparse), args))
        rows[-1]["cancel"] = measure_cancel(sparse_raster(args.sparse), args)
    ratio = max(r["peak_rss_mib"] for r in rows[1:]) / rows[0]["peak_rss_mib"]
    command = "python scripts/bench.py " + shlex.join(sys.argv[1:])
    table = memory_table(rows, ratio, command.strip())
    print(table)
    if args.write:
        update_benchmarks(table)
        print(f"bench: updated {BENCHMARKS}")
    return 0 if ratio <= MEMORY_LIMIT else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="memory", choices=["memory", "_child"])
    parser.add_argument("--model", default="auto", choices=["auto", "tiny", "brightness"])
    parser.add_argument("--large", type=int, default=16_000, help="side of the large raster")
    parser.add_argument("--small", type=int, default=2_000, help="side of the small raster")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="sides to run (instead of --small and --large)"
    )
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-write", dest="write", action="store_false",
                        help="print only; leave BENCHMARKS.md alone")  # fmt: skip
    parser.add_argument("--gsd", help="working resolution to read at (default: native)")
    parser.add_argument(
        "--sparse", type=int, help="also run a SIDE x SIDE sparse raster (and cancel it)"
    )
    parser.add_argument("--cancel-after", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--raster", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "_child":
        return run_child(args)
    return run_memory(args)


if __name__ == "__main__":
    sys.exit(main())
