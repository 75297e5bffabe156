"""`saymap segment` and `saymap info` as a user runs them: a real subprocess each time.

Bad input must give exactly one clear line on stderr, exit code 2, and write nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyogrio
import pytest
import rasterio
import shapely
from pyproj import CRS

pytestmark = pytest.mark.real_data

NEON = ("neon_osbs", "OSBS_029.tif")  # EPSG:32617, 400 x 400, bounds below
NEON_BOUNDS = (404211.9, 3285102.9, 404251.9, 3285142.9)


def saymap(*args: str | Path, data_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SAYMAP_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "saymap.engine.cli", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def bare_raster(real_data: Path, tmp_path: Path) -> Path:
    """neon_osbs with its CRS removed (the grid and pixels kept)."""
    with rasterio.open(real_data.joinpath(*NEON)) as src:
        profile, data = src.profile, src.read()
    profile.update(crs=None)
    path = tmp_path / "bare.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def assert_refused(result: subprocess.CompletedProcess, work: Path, *needles: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("saymap: error: ")
    for needle in needles:
        assert needle in lines[0]
    assert sorted(os.listdir(work)) == [] or all(
        name == "existing.gpkg" for name in os.listdir(work)
    )


def test_missing_raster(work: Path, tmp_path: Path) -> None:
    result = saymap("segment", tmp_path / "nope.tif", "tank", "-o", work / "o.gpkg",
                    data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "not found", "nope.tif")


def test_not_a_raster(real_data: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", real_data / "README.md", "tank", "-o", work / "o.gpkg",
                    data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "not a raster")


def test_no_crs(bare_raster: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", bare_raster, "tank", "-o", work / "o.gpkg", data_dir=tmp_path)
    assert_refused(result, work, "no coordinate reference system", "--assume-crs")


def test_bands_out_of_range(real_data: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", real_data.joinpath(*NEON), "tank", "-o", work / "o.gpkg",
                    "--bands", "3,2,7", data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "band 7 is out of range", "3 band(s)")


def test_empty_prompt(real_data: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", real_data.joinpath(*NEON), "  ", "-o", work / "o.gpkg",
                    data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "prompt is empty")


@pytest.mark.parametrize(
    "aoi", ["404000,3285000,404100,3285050", "-81.9,29.6,-81.8,29.7@EPSG:4326"]
)
def test_aoi_outside(real_data: Path, work: Path, tmp_path: Path, aoi: str) -> None:
    # --aoi=VALUE: argparse would take a value starting with "-" for an option.
    result = saymap("segment", real_data.joinpath(*NEON), "tank", "-o", work / "o.gpkg",
                    f"--aoi={aoi}", data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "does not overlap")


def test_output_folder_missing(real_data: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", real_data.joinpath(*NEON), "tank", "-o",
                    work / "missing" / "o.gpkg", data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "output folder does not exist")


def test_existing_output_is_kept(real_data: Path, work: Path, tmp_path: Path) -> None:
    existing = work / "existing.gpkg"
    existing.write_bytes(b"the user's own file")
    result = saymap("segment", real_data.joinpath(*NEON), "tank", "-o", existing,
                    data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "already exists", "--overwrite")
    assert existing.read_bytes() == b"the user's own file"


def test_unknown_device(real_data: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", real_data.joinpath(*NEON), "tank", "-o", work / "o.gpkg",
                    "--device", "tpu", data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "unknown device")


def test_corrupt_checkpoint(real_data: Path, work: Path, tmp_path: Path) -> None:
    from saymap.engine.model.configuration import SaymapConfig

    checkpoint = tmp_path / "broken"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(SaymapConfig.named("tiny").to_json())
    (checkpoint / "model.safetensors").write_bytes(b"\x00\x01 not safetensors at all")
    result = saymap("segment", real_data.joinpath(*NEON), "tank", "-o", work / "o.gpkg",
                    "--checkpoint", checkpoint, data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "corrupt")


def test_info_prints_what_segmenting_would_use(real_data: Path, tmp_path: Path) -> None:
    raster = real_data / "spacenet_custom_proj" / "sample_geotiff_custom_proj.tif"
    result = saymap("info", raster, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    for needle in ("custom (no EPSG code)", "Albers", "512 x 512 px", "int16", "-9999",
                   "30 x 30 metre", "2–98 % stretch"):  # fmt: skip
        assert needle in result.stdout
    refused = saymap("info", tmp_path / "nope.tif", data_dir=tmp_path)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of the `tiny` configuration (random weights: this checks the
    command, not the model's skill)."""
    from saymap.engine.model import SaymapConfig, SaymapModel, save_model

    folder = tmp_path_factory.mktemp("models") / "tiny-random"
    save_model(SaymapModel(SaymapConfig.named("tiny")), folder, {"note": "random, for tests"})
    return folder


@pytest.mark.slow
def test_segment_with_assumed_crs_and_a_long_prompt(
    bare_raster: Path, work: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """The full command with the real model: a CRS-less raster works with --assume-crs, a
    prompt over 20 tokens is truncated with a warning, the GeoPackage is in that CRS."""
    prompt = "the tall pine tree " * 6
    output = work / "trees.gpkg"
    result = saymap("segment", bare_raster, prompt, "-o", output, "--assume-crs", "EPSG:32617",
                    "--checkpoint", tiny_checkpoint, "--device", "cpu", "--threshold", "0.3",
                    "--no-progress", data_dir=tmp_path, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "20" in result.stderr
    assert "wrote" in result.stdout and "device cpu" in result.stdout
    info = pyogrio.read_info(output, layer="saymap")
    assert CRS.from_user_input(info["crs"]) == CRS.from_epsg(32617)
    assert sorted(os.listdir(work)) == ["trees.gpkg"]
    _, _, wkb, _ = pyogrio.raw.read(output, layer="saymap")
    for polygon in shapely.from_wkb(wkb):  # whatever a random model finds lies on the raster
        minx, miny, maxx, maxy = polygon.bounds
        assert NEON_BOUNDS[0] - 0.1 <= minx and maxx <= NEON_BOUNDS[2] + 0.1
        assert NEON_BOUNDS[1] - 0.1 <= miny and maxy <= NEON_BOUNDS[3] + 0.1
