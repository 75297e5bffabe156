"""Mostly empty rasters: empty tiles cost almost nothing, memory stays bounded, progress and
cancel advance over them, and non-finite pixels count as nodata (issue 16, items 1 and 8).

Real GeoTIFFs (a sparse one: blocks never written), the real pipeline, and the
deterministic BrightnessSegmenter."""

from __future__ import annotations

import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

from saymap.engine.errors import Cancelled
from saymap.engine.infer import SegmentOptions, segment_raster
from saymap.engine.raster import WindowReader, invalid_pixels, open_raster
from tests.engine.brightness import BrightnessSegmenter

SIDE = 16_384
TRANSFORM = Affine(0.5, 0, 500_000.0, 0, -0.5, 5_000_000.0)


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16384² RGB with blocks written only around one bright 100 × 100 px square."""
    path = tmp_path_factory.mktemp("sparse") / "sparse.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=SIDE, height=SIDE, count=3, dtype="uint8",
        crs="EPSG:32633", transform=TRANSFORM, tiled=True, blockxsize=256, blockysize=256,
        SPARSE_OK=True,
    ) as dst:  # fmt: skip
        block = np.full((3, 512, 512), 60, np.uint8)
        block[:, 200:300, 200:300] = 240
        dst.write(block, window=Window(8192, 8192, 512, 512))
    return path


def test_empty_blocks_are_not_read(sparse: Path) -> None:
    spec = open_raster(sparse)
    with WindowReader(spec) as reader:
        started = time.perf_counter()
        for k in range(200):
            pixels, valid = reader.read(Window(256 * (k % 20), 256 * (k // 20), 512, 512))
        empty_seconds = time.perf_counter() - started
        assert not valid.any() and not pixels.any()
        pixels, valid = reader.read(Window(8192, 8192, 512, 512))
        assert valid.all() and pixels.max() == 240
    assert empty_seconds < 5.0  # generous: a decoded read of 200 windows is not the point


def test_a_sparse_raster_runs_in_bounded_memory_and_finds_its_object(
    sparse: Path, tmp_path: Path
) -> None:
    seen: list[int] = []
    tracemalloc.start()
    result = segment_raster(
        sparse, ["roof"], tmp_path / "out.gpkg", model=BrightnessSegmenter(),
        options=SegmentOptions(tile=512, overlap=64, batch_size=4, device="cpu", gsd="native"),
        progress=lambda done, total, _m: seen.append(done),
    )  # fmt: skip
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.tiles > 1000 and result.tiles_run <= 4
    assert peak < 400 * 1024 * 1024  # many empty tiles never pile up (one is 1 MB)
    assert len(seen) > result.tiles // 20  # progress moved across the empty part
    frame = pyogrio.read_dataframe(tmp_path / "out.gpkg")
    assert len(frame) == 1
    x0, y0 = TRANSFORM * (8192 + 200, 8192 + 300)
    expected = shapely.box(x0, y0, x0 + 50, y0 + 50)
    assert frame.geometry[0].symmetric_difference(expected).area < 0.05 * expected.area


def test_cancel_takes_effect_within_two_seconds_on_empty_tiles(
    sparse: Path, tmp_path: Path
) -> None:
    cancel = threading.Event()
    first = threading.Event()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            segment_raster(
                sparse, ["roof"], tmp_path / "c.gpkg", model=BrightnessSegmenter(),
                options=SegmentOptions(tile=256, overlap=32, device="cpu", gsd="native"),
                progress=lambda *_: first.set(), cancel=cancel,
            )  # fmt: skip
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert first.wait(60)
    cancel.set()
    asked = time.perf_counter()
    worker.join(30)
    assert not worker.is_alive()
    assert time.perf_counter() - asked < 2.0
    assert outcome and isinstance(outcome[0], Cancelled)
    assert not (tmp_path / "c.gpkg").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".c.")] == []


def test_infinite_pixels_are_nodata(tmp_path: Path) -> None:
    raw = np.ones((3, 4, 4), np.float32)
    raw[0, 0, 0] = np.inf
    raw[1, 1, 1] = -np.inf
    raw[2, 2, 2] = np.nan
    invalid = invalid_pixels(raw, None)
    assert invalid[0, 0] and invalid[1, 1] and invalid[2, 2] and invalid.sum() == 3
    path = tmp_path / "inf.tif"
    data = np.full((3, 256, 256), 100.0, np.float32)
    data[:, 50:150, 50:150] = np.inf  # a "bright" band that is no measurement at all
    data[:, 180:220, 180:220] = 1000.0  # the real bright object
    with rasterio.open(
        path, "w", driver="GTiff", width=256, height=256, count=3, dtype="float32",
        crs="EPSG:32633", transform=TRANSFORM,
    ) as dst:  # fmt: skip
        dst.write(data)
    segment_raster(
        path, ["roof"], tmp_path / "inf.gpkg", model=BrightnessSegmenter(),
        options=SegmentOptions(tile=128, overlap=32, device="cpu", gsd="native"),
    )  # fmt: skip
    frame = pyogrio.read_dataframe(tmp_path / "inf.gpkg")
    x0, y0 = TRANSFORM * (50, 150)
    infinite = shapely.box(x0, y0, x0 + 50, y0 + 50)
    assert len(frame) == 1 and not frame.geometry[0].intersects(infinite.buffer(-1))
