"""`--keep-probabilities P.tif` over rasters that form several mosaics: one GeoTIFF per
mosaic, `P_1.tif` … `P_N.tif`, each in its mosaic's CRS, all checked before the run and put
in place only when the whole run succeeds. One mosaic keeps `P.tif`, as ever.

The library runs use the deterministic brightness segmenter (the right probabilities are
known); the command-line runs a real `tiny` checkpoint, as a user would.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.features import geometry_mask

from saymap.engine.collection_job import plan_collection, run_collection
from saymap.engine.errors import Cancelled, OutputError
from saymap.engine.output import kept_probabilities, probability_paths
from saymap.engine.plan import ModelFacts, SegmentOptions
from tests.engine.brightness import BrightnessSegmenter

# Two mosaics: a UTM raster and a web Mercator one, each with one bright box.
UTM = ("EPSG:32633", 404000.0, 3285000.0, 0.1)  # crs, west, north, pixel
MERCATOR = ("EPSG:3857", 1_600_000.0, 4_900_000.0, 0.3)
UTM_BOX, MERCATOR_BOX = (30, 90, 20, 70), (60, 100, 70, 120)  # row0, row1, col0, col1
SIZE = 128
OPTIONS = SegmentOptions(tile=128, overlap=32, device="cpu", gsd="native")
# One 64 px tile at a time: the tiny model is slow on a busy CPU, and the files, not the
# model's answer, are what the command-line tests check.
CLI_OPTIONS = ("--device", "cpu", "--tile", "64", "--overlap", "0", "--batch-size", "1",
               "--gsd", "native", "--threshold", "0.3", "--no-progress")  # fmt: skip


def scene(box: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    """Dark noise (never bright) with one bright box."""
    data = np.random.default_rng(seed).integers(40, 120, (3, SIZE, SIZE), dtype=np.uint8)
    row0, row1, col0, col1 = box
    data[:, row0:row1, col0:col1] = 230
    return data


def write(path: Path, data: np.ndarray, grid: tuple[str, float, float, float]) -> Path:
    crs, west, north, pixel = grid
    profile = dict(
        driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype="uint8", crs=crs, transform=Affine(pixel, 0, west, 0, -pixel, north),
        tiled=True, blockxsize=64, blockysize=64, compress="deflate",
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def two_mosaics(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return (write(folder / "utm.tif", scene(UTM_BOX), UTM),
            write(folder / "merc.tif", scene(MERCATOR_BOX, 1), MERCATOR))  # fmt: skip


def box_mask(box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    row0, row1, col0, col1 = box
    mask[row0:row1, col0:col1] = True
    return mask


def run_kept(
    rasters: list[Path], output: Path, keep: Path, overwrite: bool = False, **kwargs: object
) -> None:
    """What `saymap segment` does: plan with the path the user gave, then run with the
    kept files' hidden names (kept_probabilities), moved into place when the run succeeds."""
    model = BrightnessSegmenter()
    options = dataclasses.replace(OPTIONS, probabilities_path=str(keep), overwrite=overwrite)
    plan = plan_collection(rasters, ["bright roof"], options, ModelFacts.of(model), output)
    with kept_probabilities(keep, overwrite, len(plan.groups)) as temp:
        options = dataclasses.replace(options, probabilities_path=str(temp))
        plan = dataclasses.replace(plan, options=options)
        run_collection(plan, output, model=model, **kwargs)  # type: ignore[arg-type]


def polygons_by_source(path: Path) -> tuple[CRS, dict[str, list]]:
    meta, _, wkb, fields = pyogrio.raw.read(path, layer="saymap")
    sources = fields[meta["fields"].tolist().index("source")]
    found: dict[str, list] = {}
    for geometry, source in zip(shapely.from_wkb(wkb), sources, strict=True):
        found.setdefault(source, []).append(geometry)
    return CRS.from_user_input(meta["crs"]), found


def assert_kept(path: Path, raster: Path) -> np.ndarray:
    """The kept GeoTIFF is on the raster's grid (CRS, size, geotransform) with
    probabilities in [0, 1]; returns its band."""
    with rasterio.open(raster) as src, rasterio.open(path) as kept:
        assert CRS.from_user_input(kept.crs) == CRS.from_user_input(src.crs)
        assert (kept.width, kept.height) == (src.width, src.height)
        assert kept.transform.almost_equals(src.transform)
        assert kept.count == 1 and kept.dtypes[0] == "float32"
        band = kept.read(1)
    assert np.isfinite(band).all() and band.min() >= 0.0 and band.max() <= 1.0
    return band


def in_pixels(geometries: list, out_crs: CRS, raster: Path) -> np.ndarray:
    """The polygons (in the GeoPackage's CRS) as a mask on the raster's grid."""
    with rasterio.open(raster) as src:
        to_raster = Transformer.from_crs(out_crs, src.crs, always_xy=True)
        moved = [shapely.transform(g, lambda xy: np.column_stack(to_raster.transform(*xy.T)))
                 for g in geometries]  # fmt: skip
        return ~geometry_mask(moved, out_shape=src.shape, transform=src.transform)


def test_each_mosaic_keeps_its_probabilities_in_its_own_crs(tmp_path: Path) -> None:
    """P_1 on the UTM raster's grid, P_2 on the web Mercator one's; each bright exactly where
    its raster's box is, and where the GeoPackage's polygons from that raster lie."""
    utm, merc = two_mosaics(tmp_path)
    keep, output = tmp_path / "P.tif", tmp_path / "out.gpkg"
    run_kept([utm, merc], output, keep)
    assert probability_paths(keep, 2) == [tmp_path / "P_1.tif", tmp_path / "P_2.tif"]
    out_crs, found = polygons_by_source(output)
    for path, raster, box in ((tmp_path / "P_1.tif", utm, UTM_BOX),
                              (tmp_path / "P_2.tif", merc, MERCATOR_BOX)):  # fmt: skip
        bright = assert_kept(path, raster) > 0.5
        assert (bright == box_mask(box)).all()
        (polygon,) = found[str(raster)]
        drawn = in_pixels([polygon], out_crs, raster)
        assert (drawn & bright).sum() / (drawn | bright).sum() > 0.95
    assert sorted(os.listdir(tmp_path)) == ["P_1.tif", "P_2.tif", "merc.tif", "out.gpkg",
                                            "utm.tif"]  # fmt: skip


def test_one_mosaic_keeps_the_file_named(tmp_path: Path) -> None:
    """One raster (one mosaic): P.tif itself, as before, and no P_1.tif."""
    (raster, _) = two_mosaics(tmp_path / "rasters")
    keep = tmp_path / "P.tif"
    run_kept([raster], tmp_path / "out.gpkg", keep)
    assert probability_paths(keep, 1) == [keep]
    assert ((assert_kept(keep, raster) > 0.5) == box_mask(UTM_BOX)).all()
    assert sorted(os.listdir(tmp_path)) == ["P.tif", "out.gpkg", "rasters"]


def test_a_run_that_fails_while_merging_keeps_no_file_and_leaves_none_half_written(
    tmp_path: Path,
) -> None:
    """Cancelled in the merge, after the first mosaic's probabilities were written: no
    P_k appears, an older P_2.tif (which --overwrite would have replaced) is whole, no
    hidden file is left beside them."""
    utm, merc = two_mosaics(tmp_path / "rasters")
    kept_dir = tmp_path / "kept"
    kept_dir.mkdir()
    older = kept_dir / "P_2.tif"
    older.write_bytes(b"an older probability file")
    cancel = threading.Event()

    def progress(done: int, total: int, message: str) -> None:
        if message == "vectorising":  # every unit done: the merge comes next
            cancel.set()

    output = tmp_path / "out" / "out.gpkg"
    output.parent.mkdir()
    with pytest.raises(Cancelled):
        run_kept([utm, merc], output, kept_dir / "P.tif", True, progress=progress, cancel=cancel)
    assert os.listdir(kept_dir) == ["P_2.tif"]
    assert older.read_bytes() == b"an older probability file"
    assert not output.exists()


def test_a_target_that_appears_meanwhile_undoes_the_ones_placed_before_it(
    tmp_path: Path,
) -> None:
    """All or none: P_2.tif made by someone else during the run is kept, and P_1.tif,
    already placed, is taken back, so no half set of files is left."""
    with (
        pytest.raises(OutputError, match=r"P_2\.tif appeared while segmenting"),
        kept_probabilities(tmp_path / "P.tif", groups=2) as temp,
    ):
        for path in probability_paths(temp, 2):
            path.write_bytes(b"new probabilities")
        (tmp_path / "P_2.tif").write_bytes(b"someone else's")
    assert os.listdir(tmp_path) == ["P_2.tif"]
    assert (tmp_path / "P_2.tif").read_bytes() == b"someone else's"


# ---- the command line ----


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of the `tiny` configuration (random weights, fixed by a seed: this
    checks the files kept, not the model's skill)."""
    import torch

    from saymap.engine.model import SaymapConfig, SaymapModel, save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-random"
    save_model(SaymapModel(SaymapConfig.named("tiny")), folder, {"note": "random, for tests"})
    return folder


def saymap(*args: str | Path, base: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SAYMAP_DATA_DIR": str(base / "engine-data")}
    return subprocess.run(
        [sys.executable, "-m", "saymap.engine.cli", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def one_line_refusal(result: subprocess.CompletedProcess, *needles: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("saymap: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.slow
def test_the_command_keeps_one_geotiff_per_mosaic_and_names_its_rasters(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    utm, merc = two_mosaics(tmp_path / "rasters")
    out = tmp_path / "out"
    out.mkdir()
    result = saymap("segment", utm, merc, "-p", "roof", "-o", out / "roofs.gpkg",
                    "--keep-probabilities", out / "P.tif", "--checkpoint", tiny_checkpoint,
                    *CLI_OPTIONS, base=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == ["P_1.tif", "P_2.tif", "roofs.gpkg"]  # no temp left
    assert "kept the probabilities of each of the 2 mosaics in its own CRS:" in result.stdout
    assert f"  {out / 'P_1.tif'}: {utm} (EPSG:32633)" in result.stdout.splitlines()
    assert f"  {out / 'P_2.tif'}: {merc} (EPSG:3857)" in result.stdout.splitlines()
    out_crs, found = polygons_by_source(out / "roofs.gpkg")
    assert found  # the random model at 0.3 finds something to compare
    for path, raster in ((out / "P_1.tif", utm), (out / "P_2.tif", merc)):
        band = assert_kept(path, raster)
        if str(raster) in found:  # its polygons lie where its own probabilities pass 0.3
            drawn = in_pixels(found[str(raster)], out_crs, raster)
            assert (band[drawn] > 0.3).mean() > 0.9


def test_every_kept_file_is_checked_before_the_model_loads(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """An existing P_2.tif without --overwrite, or a P_1.tif that is an input raster (a
    link to it) even with --overwrite: one line, and nothing written."""
    utm, merc = two_mosaics(tmp_path / "rasters")
    out = tmp_path / "out"
    out.mkdir()
    older = out / "P_2.tif"
    older.write_bytes(b"an older probability file")
    command = ("segment", utm, merc, "-p", "roof", "-o", out / "roofs.gpkg",
               "--keep-probabilities", out / "P.tif", "--checkpoint", tiny_checkpoint,
               *CLI_OPTIONS)  # fmt: skip
    one_line_refusal(saymap(*command, base=tmp_path), str(older), "already exists", "--overwrite")
    assert os.listdir(out) == ["P_2.tif"]
    (out / "P_1.tif").symlink_to(utm)
    one_line_refusal(saymap(*command, "--overwrite", base=tmp_path), "same file as the raster")
    assert sorted(os.listdir(out)) == ["P_1.tif", "P_2.tif"]
    assert older.read_bytes() == b"an older probability file"
    assert (out / "P_1.tif").is_symlink()


@pytest.mark.slow
def test_a_command_that_fails_mid_way_keeps_no_probabilities(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """The second mosaic's raster is cut off: the first is segmented, the second fails to
    read; no P_k is created and no hidden file is left beside them."""
    utm, merc = two_mosaics(tmp_path / "rasters")
    merc.write_bytes(merc.read_bytes()[: merc.stat().st_size // 2])
    out, kept = tmp_path / "out", tmp_path / "kept"
    out.mkdir()
    kept.mkdir()
    result = saymap("segment", utm, merc, "-p", "roof", "-o", out / "roofs.gpkg",
                    "--keep-probabilities", kept / "P.tif", "--checkpoint", tiny_checkpoint,
                    *CLI_OPTIONS, base=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert str(merc) in result.stderr
    assert os.listdir(kept) == []
    (job,) = os.listdir(out)  # the first raster's share, kept for a re-run: it failed mid-way
    assert job.endswith(".saymap-job")
