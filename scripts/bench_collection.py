#!/usr/bin/env python
"""A collection of rasters as one job against a shell loop of single `saymap segment` calls.

Sixteen adjacent GeoTIFFs (a generated 0.3 m orthophoto-like scene cut 4 × 4, so the shipped
default reads them at their own resolution) are mapped three ways with the shipped default:
a loop of sixteen `saymap segment RASTER PROMPT` processes (one model load each), one
`saymap segment FOLDER -p PROMPT` job (one load, one GeoPackage, objects merged across the
cuts), and the same job under `torchrun --nproc-per-node 2` (CPU, gloo). On a 2-core machine
the 2-process row is there for correctness (same polygons), not for speed. Where CUDA is
present the job also runs on the GPU and its tiles/s is recorded with the GPU's name.

  python scripts/bench_collection.py            # prints the table and updates BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
from affine import Affine
from bench import BENCHMARKS, CACHE, machine, replace_section

SIDE = 4  # rasters per side
PIECE = 640  # pixels per raster side, at 0.3 m: 2 × 2 tiles of 512 px with 64 px overlap
GSD = 0.3
PROMPT = "building"
SECTION = "## Collections: one job against a shell loop"
VENV_BIN = Path(sys.executable).parent


def scene(size: int, seed: int = 0) -> np.ndarray:
    """(3, size, size) uint8: grey-brown ground with light roofs on a grid, some across cuts."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    ground = 95 + 20 * np.sin(x / 53.0) * np.cos(y / 71.0) + rng.normal(0, 6, (size, size))
    image = np.stack([ground + 12, ground + 4, ground - 8])
    for row in range(40, size - 80, 160):
        for col in range(60, size - 80, 170):
            h, w = rng.integers(36, 70, 2)
            image[:, row : row + h, col : col + w] = rng.integers(170, 230, (3, 1, 1))
    return np.clip(image, 0, 255).astype(np.uint8)


def collection(folder: Path) -> list[Path]:
    """The 4 × 4 rasters (UTM 36N, 0.3 m), written once and kept under out/bench."""
    paths = [folder / f"piece_{r}{c}.tif" for r in range(SIDE) for c in range(SIDE)]
    if all(p.exists() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    image = scene(SIDE * PIECE)
    west, north = 452_000.0, 35_000.0
    for r in range(SIDE):
        for c in range(SIDE):
            transform = Affine(GSD, 0, west + c * PIECE * GSD, 0, -GSD, north - r * PIECE * GSD)
            block = image[:, r * PIECE : (r + 1) * PIECE, c * PIECE : (c + 1) * PIECE]
            profile = {
                "driver": "GTiff", "width": PIECE, "height": PIECE, "count": 3, "dtype": "uint8",
                "crs": "EPSG:32636", "transform": transform, "tiled": True, "compress": "deflate",
            }  # fmt: skip
            with rasterio.open(folder / f"piece_{r}{c}.tif", "w", **profile) as ds:
                ds.write(block)
    return paths


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "2"}
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def features(path: Path) -> int:
    return sum(
        pyogrio.read_info(path, layer=name)["features"] for name, _ in pyogrio.list_layers(path)
    )


def tiles_in(stdout: str) -> int:
    """Tiles run, summed over the summary lines the CLI prints ("N tiles of 512 px")."""
    return sum(int(n) for n in re.findall(r"(\d+) tiles of", stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rasters = collection(CACHE / "collection")
    work = CACHE / "collection_out"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    saymap = str(VENV_BIN / "saymap")
    common = ["--checkpoint", args.checkpoint, "--no-progress"]
    rows = []

    loop_seconds, loop_tiles, loop_features = 0.0, 0, 0
    for raster in rasters:
        out = work / f"loop_{raster.stem}.gpkg"
        seconds, stdout = timed([saymap, "segment", str(raster), PROMPT, "-o", str(out), *common])
        loop_seconds += seconds
        loop_tiles += tiles_in(stdout)
        loop_features += features(out)
    rows.append(
        (
            "shell loop of 16 `saymap segment` calls",
            1,
            "cpu",
            loop_seconds,
            loop_tiles,
            loop_features,
            16,
        )
    )

    folder = str(rasters[0].parent)

    def job(name: str, out: str, launcher: list[str], processes: int, device: str) -> None:
        """One `saymap segment FOLDER -p PROMPT` job as a row (the same folder every time)."""
        target = work / out
        command = [*launcher, saymap, "segment", folder, "-p", PROMPT, "-o", str(target)]
        seconds, stdout = timed([*command, *common, "--device", device])
        rows.append((name, processes, device, seconds, tiles_in(stdout), features(target), 1))

    job("one collection job", "collection.gpkg", [], 1, "cpu")
    torchrun = [str(VENV_BIN / "torchrun"), "--nproc-per-node", "2"]
    torchrun += ["--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0"]
    job("one collection job, torchrun 2 processes (gloo)", "collection_2.gpkg", torchrun, 2, "cpu")
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
            job(f"one collection job on {gpu}", "collection_gpu.gpkg", [], 1, "cuda")
    except ImportError:
        pass

    lines = [
        SECTION,
        "",
        f"Machine: {machine()}. `python scripts/bench_collection.py`, "
        f"checkpoint `{args.checkpoint}`, prompt {PROMPT!r}: {SIDE * SIDE} adjacent GeoTIFFs "
        f"of {PIECE}² px at {GSD} m (a generated scene cut 4 × 4; roofs cross the cuts). "
        "The loop loads the model 16 times and writes 16 "
        "GeoPackages whose objects stop at the cuts; the job loads it once and writes one "
        "GeoPackage in which an object across a cut is one polygon (hence fewer polygons). "
        "The 2-process row is for correctness on this 2-core machine, not speed.",
        "",
        "| run | processes | device | wall s | tiles | tiles/s | polygons | GeoPackages "
        "| loop / this |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, procs, device, secs, tiles, count, files in rows:
        rate = f"{tiles / secs:.2f}" if tiles else "—"
        lines.append(
            f"| {name} | {procs} | {device} | {secs:.1f} | {tiles or '—'} | {rate} | {count} "
            f"| {files} | **{loop_seconds / secs:.2f}** |"
        )
    lines += [
        "",
        f"GPU: {gpu}." if gpu else "GPU: none on this machine (no CUDA device); no GPU row.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        replace_section(SECTION, text)
        print(f"bench: updated {BENCHMARKS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
