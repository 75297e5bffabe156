"""Synthetic datasets on disk: write with `write_synthetic`, read with `load_synthetic`.

Layout of DIR (version 1):
    images/<scene>.tif      RGB uint8 GeoTIFF on a made-up UTM grid (EPSG:32633, 0.5 m)
    instances/<scene>.tif   uint16 instance ids on the same grid, 0 = no object
    labels/<scene>.gpkg     one (multi)polygon per instance: instance_id, class, colour,
                            shape, size, orientation, area_px
    expressions.jsonl       one line per (scene, expression): scene_id, split, style,
                            theme, expression, kind, type, class, instance_ids, query
    manifest.json           seed, n, style, size, splits, classes, counts, version

Scenes are made in parallel and written to a temporary sibling folder that is renamed
into place at the end, so an interrupted run leaves no half dataset under DIR.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from saymap.engine.errors import DatasetError, OutputError
from saymap.training.samples import Sample, SampleMeta
from saymap.training.synthetic.scene import Scene, generate_scene

log = logging.getLogger(__name__)

VERSION = 1
CRS = "EPSG:32633"
GSD_M = 0.5
SPLITS = ("train", "val", "test")
FRACTIONS = (0.8, 0.1, 0.1)


def split_assignment(seed: int, n: int) -> list[str]:
    """Deterministic train/val/test for each scene index, from the seed alone."""
    order = np.random.default_rng([seed, 7919]).permutation(n)
    n_train = round(FRACTIONS[0] * n)
    n_val = round(FRACTIONS[1] * n)
    out = ["test"] * n
    for rank, index in enumerate(order.tolist()):
        out[index] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return out


def scene_transform(index: int, style: str, size: int):
    """Each scene gets its own patch of the made-up grid; style b sits 100 km north."""
    span = size * GSD_M + 100.0
    x0 = 300_000.0 + (index % 500) * span
    y0 = 5_000_000.0 + (index // 500) * span + (100_000.0 if style == "b" else 0.0)
    return from_origin(x0, y0, GSD_M, GSD_M)


def _write_scene(root: Path, scene: Scene, transform) -> None:
    import pyogrio.raw
    import shapely
    from rasterio.features import shapes

    h, w = scene.instances.shape
    profile = dict(
        driver="GTiff", width=w, height=h, crs=CRS, transform=transform, compress="deflate"
    )
    with rasterio.open(
        root / "images" / f"{scene.scene_id}.tif",
        "w",
        count=3,
        dtype="uint8",
        photometric="RGB",
        **profile,
    ) as dst:
        dst.write(scene.image.transpose(2, 0, 1))
    with rasterio.open(
        root / "instances" / f"{scene.scene_id}.tif", "w", count=1, dtype="uint16", **profile
    ) as dst:
        dst.write(scene.instances[None])
    parts: dict[int, list] = {}
    for geom, value in shapes(scene.instances, mask=scene.instances > 0, transform=transform):
        parts.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    ids = sorted(parts)
    by_id = {f.instance_id: f for f in scene.facts}
    geoms = [shapely.MultiPolygon(parts[i]) for i in ids]
    columns = {
        "instance_id": np.asarray(ids, np.int32),
        "class": np.asarray([by_id[i].class_name for i in ids], object),
        "colour": np.asarray([by_id[i].colour or "" for i in ids], object),
        "shape": np.asarray([by_id[i].shape or "" for i in ids], object),
        "size": np.asarray([by_id[i].size or "" for i in ids], object),
        "orientation": np.asarray([by_id[i].orientation or "" for i in ids], object),
        "area_px": np.asarray([by_id[i].area for i in ids], np.int32),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.raw.write(
            root / "labels" / f"{scene.scene_id}.gpkg",
            np.asarray(shapely.to_wkb(geoms), object),
            list(columns.values()),
            list(columns),
            layer="instances",
            driver="GPKG",
            geometry_type="MultiPolygon",
            crs=CRS,
            layer_options={"SPATIAL_INDEX": "NO"},  # a few polygons: an R-tree only adds size
        )


def _make_one(job: tuple[str, int, int, str, int, str]) -> tuple[list[dict], dict[str, int]]:
    """Worker: make, write and describe scene `index`; returns its jsonl records."""
    root, seed, index, style, size, split = job
    scene = generate_scene(seed, index, style, size)
    _write_scene(Path(root), scene, scene_transform(index, style, size))
    records = [
        {
            "scene_id": scene.scene_id,
            "split": split,
            "style": style,
            "theme": scene.theme,
            "expression": e.text,
            "kind": e.kind,
            "type": e.expression_type,
            "class": e.query.class_name,
            "instance_ids": list(e.instance_ids),
            "query": e.query.to_dict(),
        }
        for e in scene.expressions
    ]
    return records, dict(Counter(f.class_name for f in scene.facts))


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def write_synthetic(
    out: Path,
    n: int,
    seed: int = 0,
    style: str = "a",
    size: int = 256,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Make `n` scenes under `out` (which must not exist or be empty); returns the manifest."""
    out = Path(out)
    if n < 1:
        raise DatasetError(f"--n must be at least 1, got {n}")
    if size % 32 or size < 128:
        raise DatasetError(f"--size must be a multiple of 32 and at least 128, got {size}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out} already exists and is not empty; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    started = time.perf_counter()
    try:
        for sub in ("images", "instances", "labels"):
            (tmp / sub).mkdir()
        splits = split_assignment(seed, n)
        jobs = [(str(tmp), seed, i, style, size, splits[i]) for i in range(n)]
        workers = workers or default_workers()
        classes: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        with (tmp / "expressions.jsonl").open("w") as lines:
            results = _run(jobs, workers)
            for done, (records, counts) in enumerate(results, start=1):
                classes.update(counts)
                for r in records:
                    kinds[f"{r['kind']}/{r['type']}"] += 1
                    lines.write(json.dumps(r) + "\n")
                if progress:
                    progress(done, n)
        manifest = {
            "version": VERSION,
            "generator": "saymap.training.synthetic",
            "seed": seed,
            "n": n,
            "style": style,
            "size": size,
            "crs": CRS,
            "gsd_m": GSD_M,
            "splits": dict(Counter(splits)),
            "split_fractions": dict(zip(SPLITS, FRACTIONS, strict=True)),
            "classes": dict(sorted(classes.items())),
            "expressions": dict(sorted(kinds.items())),
            "seconds": round(time.perf_counter() - started, 2),
            "workers": workers,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _run(jobs: list, workers: int):
    if workers == 1:
        yield from map(_make_one, jobs)
        return
    # spawn: workers start clean (no inherited GDAL state or threads from the parent).
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_make_one, jobs, chunksize=8)


class SyntheticDataset:
    """Samples of one split of a synthetic folder, read lazily (one scene cached)."""

    def __init__(self, root: Path, records: list[dict], manifest: dict) -> None:
        self.root = Path(root)
        self.records = records
        self.manifest = manifest
        self._cached: tuple[str, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def _scene(self, scene_id: str) -> tuple[np.ndarray, np.ndarray]:
        if self._cached is None or self._cached[0] != scene_id:
            with rasterio.open(self.root / "images" / f"{scene_id}.tif") as src:
                image = src.read().transpose(1, 2, 0)
            with rasterio.open(self.root / "instances" / f"{scene_id}.tif") as src:
                instances = src.read(1)
            self._cached = (scene_id, np.ascontiguousarray(image), instances)
        return self._cached[1], self._cached[2]

    def meta(self, index: int) -> SampleMeta:
        r = self.records[index]
        return SampleMeta(r["kind"], r["class"], f"{r['scene_id']}:{r['line']}", "synthetic")

    def __getitem__(self, index: int) -> Sample:
        r = self.records[index]
        image, instances = self._scene(r["scene_id"])
        mask = np.isin(instances, r["instance_ids"]).astype(np.uint8)
        return Sample(
            image=image,
            mask=mask,
            expression=r["expression"],
            kind=r["kind"],
            expression_type=r["type"],
            class_name=r["class"],
            sample_id=f"{r['scene_id']}:{r['line']}",
            source="synthetic",
        )


def load_synthetic(
    root: Path,
    split: str | None = "train",
    kinds: tuple[str, ...] | None = None,
    types: tuple[str, ...] | None = None,
) -> SyntheticDataset:
    """The samples of one split (None: all) of a folder written by `write_synthetic`."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise DatasetError(f"{root} is not a synthetic dataset: no manifest.json")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("version") != VERSION:
        raise DatasetError(f"{root}: dataset version {manifest.get('version')}, want {VERSION}")
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    records = []
    with (root / "expressions.jsonl").open() as lines:
        for number, line in enumerate(lines, start=1):
            r = json.loads(line)
            r["line"] = number  # a stable id: the line in expressions.jsonl
            if split is not None and r["split"] != split:
                continue
            if kinds is not None and r["kind"] not in kinds:
                continue
            if types is not None and r["type"] not in types:
                continue
            records.append(r)
    return SyntheticDataset(root, records, manifest)
