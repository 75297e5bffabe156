"""CUDA correctness: the pipeline on a GPU (pinned, non-blocking copies, bf16 autocast)
finds what the CPU finds. Skipped where torch sees no GPU, which is every CI run so far;
it needs no ../shared (which does not travel to a lent GPU machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from saymap.engine.infer import SegmentOptions, segment_raster
from saymap.engine.model import load_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
ROOT = Path(__file__).resolve().parents[2]


def _scene(path: Path) -> Path:
    """A 1024² RGB GeoTIFF of soft blobs and bright squares (UTM, 0.5 m)."""
    y, x = np.mgrid[0:1024, 0:1024]
    ground = 90 + 50 * np.sin(x / 37.0) * np.cos(y / 53.0)
    bright = ((x % 200) < 40) & ((y % 160) < 30)
    image = np.stack([np.where(bright, 240 - 20 * i, ground + 15 * i) for i in range(3)])
    with rasterio.open(
        path, "w", driver="GTiff", width=1024, height=1024, count=3, dtype="uint8",
        crs="EPSG:32633", transform=rasterio.transform.from_origin(400000, 5000000, 0.5, 0.5),
    ) as dst:  # fmt: skip
        dst.write(image.astype(np.uint8))
    return path


def _probabilities(raster: Path, out: Path, device: str) -> np.ndarray:
    model = load_model(ROOT / "engine" / "models" / "default", device="cpu")
    options = SegmentOptions(
        tile=512, overlap=64, batch_size=8, device=device,
        probabilities_path=str(out.with_suffix(".tif")),
    )  # fmt: skip
    result = segment_raster(raster, ["building", "tree"], out, model=model, options=options)
    assert result.device.startswith(device)
    with rasterio.open(result.probabilities_path) as src:
        return src.read()


def test_cuda_finds_what_the_cpu_finds(tmp_path: Path) -> None:
    raster = _scene(tmp_path / "scene.tif")
    cpu = _probabilities(raster, tmp_path / "cpu.gpkg", "cpu")
    gpu = _probabilities(raster, tmp_path / "cuda.gpkg", "cuda")
    assert cpu.shape == gpu.shape
    # bf16 autocast: probabilities agree to about 1e-2; the masks to within a fraction.
    assert float(np.abs(cpu - gpu).mean()) < 0.02
    agree = ((cpu > 0.5) == (gpu > 0.5)).mean()
    assert agree > 0.98, agree
