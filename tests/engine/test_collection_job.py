"""A collection of rasters as one job (engine/collection_job.py), on generated rasters with
the deterministic brightness segmenter, so the right polygons are known: an object across
the cut between rasters is one polygon, rasters in several CRSs land in the output CRS at
the right place, and an interrupted job resumes to the same result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Transformer

from saymap.engine.collection_job import plan_collection, run_collection, work_dir_for
from saymap.engine.errors import Cancelled, CRSError, OutputError, RasterReadError
from saymap.engine.plan import ModelFacts, SegmentOptions
from tests.engine.brightness import BrightnessSegmenter

OPTIONS = SegmentOptions(tile=128, overlap=32, device="cpu", gsd="native")
PIXEL = 0.1  # metres: the scenes' pixel, and the working pixel (--gsd native)
WEST, NORTH = 404000.0, 3285000.0
SIZE = 512
BOX = (180, 330, 200, 300)  # row0, row1, col0, col1: across both cuts at 256


def scene(size: int = SIZE, box: tuple[int, int, int, int] = BOX, seed: int = 0) -> np.ndarray:
    """Dark noise (never bright) with one bright box."""
    data = np.random.default_rng(seed).integers(40, 120, (3, size, size), dtype=np.uint8)
    row0, row1, col0, col1 = box
    data[:, row0:row1, col0:col1] = 230
    return data


def write(path: Path, data: np.ndarray, crs: str, west: float, north: float) -> Path:
    profile = dict(
        driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype="uint8", crs=crs, transform=Affine(PIXEL, 0, west, 0, -PIXEL, north),
        tiled=True, blockxsize=128, blockysize=128, compress="deflate",
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def cut_in_four(folder: Path, data: np.ndarray, crs: str = "EPSG:32633") -> list[Path]:
    """The scene as four GeoTIFFs (quadrants, read order), each on the scene's grid."""
    folder.mkdir(parents=True, exist_ok=True)
    half = data.shape[1] // 2
    paths = []
    for i, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        part = data[:, r * half : (r + 1) * half, c * half : (c + 1) * half]
        west, north = WEST + c * half * PIXEL, NORTH - r * half * PIXEL
        paths.append(write(folder / f"tile_{i}.tif", part, crs, west, north))
    return paths


def damage_last_block(path: Path) -> bytes:
    """Garble the bytes of the raster's last block (with no overlap only its own unit reads
    it); returns the original file."""
    original = path.read_bytes()
    with rasterio.open(path) as src:
        rows, cols = (-(-n // b) for n, b in zip(src.shape, src.block_shapes[0], strict=True))
        offset = int(src.get_tag_item(f"BLOCK_OFFSET_{cols - 1}_{rows - 1}", "TIFF", bidx=1))
        size = int(src.get_tag_item(f"BLOCK_SIZE_{cols - 1}_{rows - 1}", "TIFF", bidx=1))
    damaged = bytearray(original)
    damaged[offset : offset + size] = bytes((i * 7 + 3) % 256 for i in range(size))
    stat = path.stat()
    path.write_bytes(bytes(damaged))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return original


def segment(inputs: list[Path], output: Path, **kwargs: object) -> object:
    model = BrightnessSegmenter()
    options = kwargs.pop("options", OPTIONS)
    prompts = kwargs.pop("prompts", ["bright roof"])
    plan = plan_collection(
        [str(p) for p in inputs], prompts, options, ModelFacts.of(model), output,
        out_crs=kwargs.pop("out_crs", None),  # type: ignore[arg-type]
    )  # fmt: skip
    return run_collection(plan, output, model=model, **kwargs)  # type: ignore[arg-type]


def polygons(path: Path, layer: str = "saymap") -> tuple[list, list[dict]]:
    meta, _, wkb, fields = pyogrio.raw.read(path, layer=layer)
    rows = [dict(zip(meta["fields"], values, strict=True)) for values in zip(*fields, strict=True)]
    return list(shapely.from_wkb(wkb)), rows


def test_an_object_across_the_cut_is_one_polygon_as_on_the_uncut_raster(tmp_path: Path) -> None:
    data = scene()
    whole = write(tmp_path / "whole.tif", data, "EPSG:32633", WEST, NORTH)
    tiles = cut_in_four(tmp_path / "tiles", data)
    one = segment([whole], tmp_path / "whole.gpkg")
    four = segment(tiles, tmp_path / "tiles.gpkg")
    (expected,), _ = polygons(tmp_path / "whole.gpkg")
    (found,), (row,) = polygons(tmp_path / "tiles.gpkg")
    assert four.units == 4 and four.n_features == 1 and one.n_features == 1  # type: ignore[attr-defined]
    assert expected.hausdorff_distance(found) <= PIXEL
    assert expected.symmetric_difference(found).area <= found.length * PIXEL
    row0, row1, col0, col1 = BOX
    truth = shapely.box(WEST + col0 * PIXEL, NORTH - row1 * PIXEL, WEST + col1 * PIXEL,
                        NORTH - row0 * PIXEL)  # fmt: skip
    assert truth.hausdorff_distance(found) <= PIXEL
    # its representative point lies in the first quadrant's owned area
    point = found.representative_point()
    owner = next(t for t in tiles if shapely.box(*rasterio.open(t).bounds).contains(point))
    assert row["source"] == str(owner)
    assert not work_dir_for(tmp_path / "tiles.gpkg").exists()  # removed on success


def test_a_damaged_member_is_named_with_its_mosaic_not_by_the_temporary_vrt(
    tmp_path: Path,
) -> None:
    tiles = cut_in_four(tmp_path / "tiles", scene())
    damage_last_block(tiles[3])
    with pytest.raises(RasterReadError) as caught:
        segment(tiles, tmp_path / "out.gpkg")
    message = str(caught.value)
    assert "of the mosaic of 4 rasters (tile_0.tif … tile_3.tif): " in message
    assert "tile_3.tif, band 1" in message  # GDAL's own words name the member
    assert ".vrt" not in message and "saymap-layout" not in message


def test_rasters_in_several_crss_are_written_in_the_output_crs(tmp_path: Path) -> None:
    """One raster in UTM 33N, one in web Mercator: both objects come out in EPSG:3857, at
    the place the UTM one's pixels say, in one layer per prompt."""
    utm_box, merc_box = (100, 160, 60, 140), (40, 90, 150, 220)
    utm = write(tmp_path / "utm.tif", scene(256, utm_box), "EPSG:32633", WEST, NORTH)
    merc_west, merc_north = 1_600_000.0, 4_900_000.0
    merc = write(tmp_path / "merc.tif", scene(256, merc_box, 1), "EPSG:3857", merc_west, merc_north)
    prompts = ["bright roof", "white tank"]
    result = segment([utm, merc], tmp_path / "out.gpkg", prompts=prompts, out_crs="EPSG:3857")
    assert result.layers == {"bright roof": "saymap_bright_roof",  # type: ignore[attr-defined]
                             "white tank": "saymap_white_tank"}  # fmt: skip
    assert result.out_crs == "EPSG:3857"  # type: ignore[attr-defined]
    for layer in result.layers.values():  # type: ignore[attr-defined]
        assert CRS.from_user_input(pyogrio.read_info(tmp_path / "out.gpkg", layer=layer)["crs"]) \
            == CRS.from_epsg(3857)  # fmt: skip
        found, rows = polygons(tmp_path / "out.gpkg", layer)
        assert len(found) == 2
        by_source = {row["source"]: g for row, g in zip(rows, found, strict=True)}
        # the UTM object, moved to web Mercator: its centre where the UTM pixels put it
        r0, r1, c0, c1 = utm_box
        centre = (WEST + (c0 + c1) / 2 * PIXEL, NORTH - (r0 + r1) / 2 * PIXEL)
        x, y = Transformer.from_crs(32633, 3857, always_xy=True).transform(*centre)
        moved = by_source[str(utm)]
        assert abs(moved.centroid.x - x) < PIXEL and abs(moved.centroid.y - y) < PIXEL
        assert moved.area > 0.9 * (r1 - r0) * (c1 - c0) * PIXEL**2  # stretched, not shrunk
        r0, r1, c0, c1 = merc_box
        same = by_source[str(merc)]
        assert abs(same.centroid.x - (merc_west + (c0 + c1) / 2 * PIXEL)) < PIXEL / 2
        assert abs(same.centroid.y - (merc_north - (r0 + r1) / 2 * PIXEL)) < PIXEL / 2
    # Without --out-crs the output is in the first raster's CRS.
    model = ModelFacts.of(BrightnessSegmenter())
    plan = plan_collection([str(utm), str(merc)], ["x"], OPTIONS, model, tmp_path / "d.gpkg")
    assert CRS.from_wkt(plan.out_crs_wkt) == CRS.from_epsg(32633)
    with pytest.raises(CRSError, match="not a CRS"):
        plan_collection([str(utm)], ["x"], OPTIONS, model, tmp_path / "d.gpkg", out_crs="EPSG:1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merc.tif", "out.gpkg", "utm.tif"]


def _gpkg_rows(path: Path) -> list[tuple]:
    found, rows = polygons(path)
    return sorted((g.wkb_hex, r["prompt"], r["score"], r["area_m2"], r["source"])
                  for g, r in zip(found, rows, strict=True))  # fmt: skip


def test_a_cancelled_job_resumes_its_done_units_and_ends_the_same(tmp_path: Path) -> None:
    data = scene()
    tiles = cut_in_four(tmp_path / "tiles", data)
    reference = segment(tiles, tmp_path / "reference.gpkg")
    output = tmp_path / "out.gpkg"
    cancel = threading.Event()

    def stop_at_third(unit: object, done: int, total: int) -> None:
        if unit.index == 2:  # type: ignore[attr-defined]
            cancel.set()

    with pytest.raises(Cancelled):
        segment(tiles, output, cancel=cancel, unit_progress=stop_at_third)
    work = work_dir_for(output)
    assert not output.exists()
    assert sorted(p.name for p in (work / "done").iterdir()) == ["unit_00000.json",
                                                                 "unit_00001.json"]  # fmt: skip
    assert json.loads((work / "manifest.json").read_text())["prompts"] == ["bright roof"]
    # another job (other prompts) may not take the folder over, unless asked to
    with pytest.raises(OutputError, match="--overwrite"):
        segment(tiles, output, prompts=["other"])
    ran: list[int] = []
    result = segment(tiles, output, unit_progress=lambda u, d, t: ran.append(u.index))
    assert result.units == 4 and result.units_resumed == 2  # type: ignore[attr-defined]
    assert set(ran) == {2, 3}
    assert _gpkg_rows(output) == _gpkg_rows(tmp_path / "reference.gpkg")
    assert reference.n_features == 1  # type: ignore[attr-defined]
    assert not work.exists()


def test_overwrite_restarts_another_jobs_folder(tmp_path: Path) -> None:
    tiles = cut_in_four(tmp_path / "tiles", scene())
    output = tmp_path / "out.gpkg"
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        segment(tiles, output, prompts=["first"], cancel=cancel,
                unit_progress=lambda u, d, t: u.index == 1 and cancel.set())  # fmt: skip
    options = SegmentOptions(tile=128, overlap=32, device="cpu", gsd="native", overwrite=True)
    result = segment(tiles, output, options=options)
    assert result.units_resumed == 0 and result.n_features == 1  # type: ignore[attr-defined]
    assert not work_dir_for(output).exists()


def test_a_single_raster_is_a_job_of_one_unit_with_the_old_output(tmp_path: Path) -> None:
    """One raster, one prompt: layer "saymap", its source the raster, nothing left over."""
    raster = write(tmp_path / "one.tif", scene(), "EPSG:32633", WEST, NORTH)
    result = segment([raster], tmp_path / "one.gpkg")
    assert result.units == 1 and result.rasters == (str(raster),)  # type: ignore[attr-defined]
    assert result.window == (0, 0, SIZE, SIZE)  # type: ignore[attr-defined]
    assert pyogrio.list_layers(tmp_path / "one.gpkg")[:, 0].tolist() == ["saymap"]
    (_,), (row,) = polygons(tmp_path / "one.gpkg")
    assert row["source"] == str(raster) and row["prompt"] == "bright roof"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.gpkg", "one.tif"]


# ---- the command line, killed and run again (a real checkpoint: the `tiny` model) ----

# One 64 px tile per unit: the model is slow on a busy CPU, and the merge, not the
# model's context across cuts (the brightness tests above), is what these check.
CLI_OPTIONS = ("--device", "cpu", "--tile", "64", "--overlap", "0", "--batch-size", "1",
               "--gsd", "native", "--threshold", "0.3", "--no-progress")  # fmt: skip
SMALL_BOX = (20, 100, 40, 90)  # across both cuts of a 128 px scene


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of the `tiny` configuration (random weights, fixed by a seed: this
    checks the job, not the model's skill)."""
    import torch

    from saymap.engine.model import SaymapConfig, SaymapModel, save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-random"
    save_model(SaymapModel(SaymapConfig.named("tiny")), folder, {"note": "random, for tests"})
    return folder


def cli_env(base: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "SAYMAP_DATA_DIR": str(base / "engine-data")}


def cli(*args: str | Path, base: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "saymap.engine.cli", *map(str, args)],
        capture_output=True, text=True, env=cli_env(base), timeout=timeout,
    )  # fmt: skip


def feature_rows(path: Path) -> list[tuple]:
    """Every feature of every layer, without the run's id and time."""
    rows = []
    for layer in pyogrio.list_layers(path)[:, 0]:
        found, fields = polygons(path, layer)
        rows += [(layer, g.wkb_hex, f["prompt"], round(f["score"], 6), f["source"])
                 for g, f in zip(found, fields, strict=True)]  # fmt: skip
    return sorted(rows)


@pytest.mark.slow
def test_a_job_killed_after_two_rasters_skips_them_when_run_again(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    tiles = cut_in_four(tmp_path / "tiles", scene(128, SMALL_BOX))
    command = ("segment", *tiles, "-p", "roof", "--checkpoint",
               tiny_checkpoint, *CLI_OPTIONS)  # fmt: skip
    whole = cli(*command, "-o", tmp_path / "whole.gpkg", base=tmp_path)
    assert whole.returncode == 0, whole.stderr
    expected = feature_rows(tmp_path / "whole.gpkg")
    assert expected  # the random model at 0.3 finds something to compare

    output = tmp_path / "out.gpkg"
    done = work_dir_for(output) / "done"
    process = subprocess.Popen(
        [sys.executable, "-m", "saymap.engine.cli", *map(str, command), "-o", str(output)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (done.is_dir() and len(list(done.glob("unit_*.json"))) >= 2):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "two units were not done in time"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_after = sorted(p.name for p in done.glob("unit_*.json"))
    assert 2 <= len(killed_after) < 4 and killed_after[:2] == ["unit_00000.json",
                                                                "unit_00001.json"]  # fmt: skip
    assert not output.exists()

    again = cli(*command, "-o", output, base=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"resumed {len(killed_after)} of 4 unit(s)" in again.stdout
    assert feature_rows(output) == expected
    assert not work_dir_for(output).exists()
