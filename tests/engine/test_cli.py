"""`saymap segment` and `saymap info` as a user runs them: a real subprocess each time.

Bad input must give exactly one clear line on stderr, exit code 2, and write nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyogrio
import pytest
import shapely
from pyproj import CRS

from tests.engine.generated import buildings, int16_custom, with_white_nodata
from tests.engine.painting import without_crs

NEON_BOUNDS = (404211.9, 3285102.9, 404251.9, 3285142.9)  # the generated look-alike's


@pytest.fixture(scope="module")
def neon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated stand-in for neon_osbs (EPSG:32617, 400 x 400 px at 0.1 m, nodata 255),
    so these run without ../shared."""
    return with_white_nodata(tmp_path_factory.mktemp("rasters") / "OSBS_029.tif")


def saymap(*args: str | Path, data_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`saymap ARGS` with its engine data folder in `data_dir`/engine-data (which inputs and
    outputs may not be in, so tests keep their files beside it)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SAYMAP_DATA_DIR": str(engine_data(data_dir))}
    return subprocess.run(
        [sys.executable, "-m", "saymap.engine.cli", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip


def engine_data(base: Path) -> Path:
    return base / "engine-data"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def bare_raster(neon: Path, tmp_path: Path) -> Path:
    """neon_osbs with its CRS removed (the grid and pixels kept)."""
    return without_crs(neon, tmp_path / "bare.tif")


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


def test_not_a_raster(work: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("not pixels\n")
    result = saymap("segment", readme, "tank", "-o", work / "o.gpkg",
                    data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "not a raster")


def test_no_crs(bare_raster: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", bare_raster, "tank", "-o", work / "o.gpkg", data_dir=tmp_path)
    assert_refused(result, work, "no coordinate reference system", "--assume-crs")


def test_bands_out_of_range(neon: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", neon, "tank", "-o", work / "o.gpkg",
                    "--bands", "3,2,7", data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "band 7 is out of range", "3 band(s)")


def test_empty_prompt(neon: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", neon, "  ", "-o", work / "o.gpkg",
                    data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "prompt is empty")


@pytest.mark.parametrize(
    "aoi", ["404000,3285000,404100,3285050", "-81.9,29.6,-81.8,29.7@EPSG:4326"]
)
def test_aoi_outside(neon: Path, work: Path, tmp_path: Path, aoi: str) -> None:
    # --aoi=VALUE: argparse would take a value starting with "-" for an option.
    result = saymap("segment", neon, "tank", "-o", work / "o.gpkg",
                    f"--aoi={aoi}", data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "does not overlap")


def test_output_folder_missing(neon: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", neon, "tank", "-o",
                    work / "missing" / "o.gpkg", data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "output folder does not exist")


def test_existing_output_is_kept(neon: Path, work: Path, tmp_path: Path) -> None:
    existing = work / "existing.gpkg"
    existing.write_bytes(b"the user's own file")
    result = saymap("segment", neon, "tank", "-o", existing,
                    data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "already exists", "--overwrite")
    assert existing.read_bytes() == b"the user's own file"


def test_unknown_device(neon: Path, work: Path, tmp_path: Path) -> None:
    result = saymap("segment", neon, "tank", "-o", work / "o.gpkg",
                    "--device", "tpu", data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "unknown device")


def test_corrupt_checkpoint(neon: Path, work: Path, tmp_path: Path) -> None:
    from saymap.engine.model.configuration import SaymapConfig

    checkpoint = tmp_path / "broken"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(SaymapConfig.named("tiny").to_json())
    (checkpoint / "model.safetensors").write_bytes(b"\x00\x01 not safetensors at all")
    result = saymap("segment", neon, "tank", "-o", work / "o.gpkg",
                    "--checkpoint", checkpoint, data_dir=tmp_path)  # fmt: skip
    assert_refused(result, work, "corrupt")


def test_info_prints_what_segmenting_would_use(tmp_path: Path) -> None:
    raster = int16_custom(tmp_path / "custom.tif", size=512)  # like spacenet_custom_proj
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


def one_line_refusal(result: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("saymap: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("option", "needles"),
    [
        (["--tile", "100000"], ["tile size", "4096"]),  # once: "Unable to allocate 27.9 GiB"
        (["--min-area", "nan"], ["minimum area", "nan"]),
        (["--min-area", "-100"], ["minimum area", "-100"]),
        (["--min-area", "inf"], ["minimum area", "inf"]),
        (["--batch-size", "100000"], ["batch size", "256"]),
        (["--aoi=-1e308,-1e308,1e308,1e308"], ["AOI bounds must be finite"]),
    ],
)
def test_options_out_of_bounds_are_refused_before_the_model_loads(
    neon: Path,
    work: Path,
    tmp_path: Path,
    tiny_checkpoint: Path,
    option: list[str],
    needles: list[str],
) -> None:
    result = saymap("segment", neon, "tree", "-o", work / "o.gpkg",
                    "--checkpoint", tiny_checkpoint, "--device", "cpu", "--no-progress", *option,
                    data_dir=tmp_path)  # fmt: skip
    one_line_refusal(result, *needles)
    assert os.listdir(work) == []


def test_keep_probabilities_never_replaces_a_file_it_may_not(
    neon: Path, work: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """The GeoPackage's rules: an existing file only with --overwrite, and never an input."""
    raster = work / "image.tif"
    raster.write_bytes(neon.read_bytes())
    notes = work / "notes.txt"
    notes.write_text("my notes")
    existing = work / "probabilities.tif"
    existing.write_bytes(b"an older probability file")
    base = ("segment", raster, "tree", "-o", work / "o.gpkg", "--checkpoint", tiny_checkpoint,
            "--device", "cpu", "--no-progress")  # fmt: skip
    cases = [
        (["--keep-probabilities", notes], ["GeoTIFF", "notes.txt"]),
        (["--keep-probabilities", existing], ["already exists", "--overwrite"]),
        (["--keep-probabilities", raster, "--overwrite"], ["same file as the raster"]),
        (["--keep-probabilities", work / "link.tif", "--overwrite"], ["same file as the raster"]),
    ]
    (work / "link.tif").symlink_to(raster)
    for extra, needles in cases:
        one_line_refusal(saymap(*base, *extra, data_dir=tmp_path), *needles)
    assert notes.read_text() == "my notes"
    assert existing.read_bytes() == b"an older probability file"
    assert raster.read_bytes() == neon.read_bytes()
    assert sorted(os.listdir(work)) == ["image.tif", "link.tif", "notes.txt", "probabilities.tif"]


@pytest.fixture
def truncated_raster(neon: Path, tmp_path: Path) -> Path:
    """neon_osbs cut off half-way: its header opens, its lower blocks cannot be read."""
    source = neon.read_bytes()
    path = tmp_path / "truncated.tif"
    path.write_bytes(source[: len(source) // 2])
    return path


def test_a_failed_run_names_the_damaged_block_and_keeps_the_old_probabilities_file(
    truncated_raster: Path, work: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """The model loads, reading fails mid-way: the message says which file and which part
    (not "Read failed. See previous exception"), and --keep-probabilities' existing file,
    allowed to be replaced, is still whole because the new one was written beside it."""
    existing = work / "probabilities.tif"
    existing.write_bytes(b"an older probability file")
    result = saymap("segment", truncated_raster, "tree", "-o", work / "o.gpkg",
                    "--keep-probabilities", existing, "--overwrite", "--checkpoint",
                    tiny_checkpoint, "--device", "cpu", "--no-progress",
                    data_dir=tmp_path, timeout=300)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("saymap: error")]
    for needle in (str(truncated_raster), "band 1", "offset"):
        assert needle in line, line
    assert "tile" in line or "scanline" in line, line  # the block: tiled look-alike, striped real
    assert "See previous exception" not in line
    assert existing.read_bytes() == b"an older probability file"
    assert sorted(os.listdir(work)) == ["probabilities.tif"]  # nothing hidden left behind


@pytest.mark.parametrize("name", ["jobs.sqlite3", "token", "models/x/model.tif"])
def test_paths_in_the_engine_data_folder_are_refused(
    neon: Path, work: Path, tmp_path: Path, name: str
) -> None:
    """GDAL's SQLite driver opening the job database deletes its -wal file (and with it the
    engine's unsaved history); nothing may read or write inside the data folder."""
    from saymap.engine.server.store import JobRecord, JobStore, now_iso

    data = engine_data(tmp_path)
    data.mkdir()
    store = JobStore(data / "jobs.sqlite3")
    store.save(JobRecord("j", "segment", "done", 1.0, "", now_iso(), {}))  # -wal in use
    wal = data / "jobs.sqlite3-wal"
    assert wal.exists()
    try:
        target = data / name
        as_raster = saymap("segment", target, "tree", "-o", work / "o.gpkg", data_dir=tmp_path)
        one_line_refusal(as_raster, "data folder", str(target))
        as_output = saymap("segment", neon, "tree", "-o",
                           data / "o.gpkg", data_dir=tmp_path)  # fmt: skip
        one_line_refusal(as_output, "data folder")
        assert wal.exists()
        assert [r.id for r in store.load_all()] == ["j"]
    finally:
        store.close()
    assert os.listdir(work) == []
    # The one exception: exports/, where the plugin writes the rasters it hands the engine.
    exported = data / "exports" / "layer.tif"
    exported.parent.mkdir()
    exported.write_bytes(neon.read_bytes())
    allowed = saymap("segment", exported, "tree", "-o", work / "o.gpkg", "--checkpoint",
                     tmp_path / "no-such-checkpoint", data_dir=tmp_path)  # fmt: skip
    assert allowed.returncode == 2 and "data folder" not in allowed.stderr, allowed.stderr
    # ... and results/, the plugin's default folder for the GeoPackages it asks for.
    (data / "results").mkdir()
    result = saymap("segment", neon, "tree", "-o",
                    data / "results" / "trees.gpkg", "--checkpoint",
                    tmp_path / "no-such-checkpoint", data_dir=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "data folder" not in result.stderr, result.stderr


@pytest.mark.slow
def test_sigterm_removes_the_temporary_files_as_ctrl_c_does(
    work: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    raster, _ = buildings(tmp_path / "kampala")  # 2048 px, as kampala: 64 tiles of 256
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SAYMAP_DATA_DIR": str(engine_data(tmp_path))}
    process = subprocess.Popen(
        [sys.executable, "-m", "saymap.engine.cli", "segment", str(raster), "roof", "-o",
         str(work / "roofs.gpkg"), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
         "--tile", "256", "--batch-size", "1", "--gsd", "native", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        units = work / "roofs.gpkg.saymap-job" / "units"  # the job folder (collection_job.py)
        while not (units.is_dir() and any(n.endswith(".tmp.tif") for n in os.listdir(units))):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(0.05)
        time.sleep(0.5)  # mid-way through the tiles
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "saymap: terminated" in stderr
    assert os.listdir(work) == []


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


@pytest.mark.slow
def test_a_full_disk_is_said_in_one_line_with_where(
    neon: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """A real full filesystem (a 64 KiB tmpfs, so the test needs root; it is skipped
    otherwise): no traceback, the words "disk is full" and the output's path."""
    small = tmp_path / "small-disk"
    if not _mount_tmpfs(small, "64k"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        output = small / "trees.gpkg"
        result = saymap("segment", neon, "tree", "-o", output,
                        "--checkpoint", tiny_checkpoint, "--device", "cpu", "--threshold",
                        "0.01", "--no-progress", data_dir=tmp_path, timeout=300)  # fmt: skip
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        (line,) = [line for line in result.stderr.splitlines() if "saymap: error" in line]
        assert "disk is full" in line and str(output) in line, line
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_collection_inputs_are_refused_in_one_line_before_the_model(
    neon: Path, work: Path, tmp_path: Path
) -> None:
    """Several rasters, -p prompts and --out-crs: what cannot work is said before any
    model loads, and nothing is written (no job folder either)."""
    cases = [
        (["segment", neon, "-o", work / "o.gpkg"], ["no prompt", "-p"]),
        (["segment", tmp_path / "none_*.tif", "-p", "tree", "-o", work / "o.gpkg"],
         ["no raster file matches", "none_*.tif"]),
        (["segment", neon, neon, "-p", "tree", "-o", work / "o.gpkg", "--out-crs", "EPSG:1"],
         ["--out-crs", "not a CRS"]),
        (["segment", neon, "-p", "tree", "-p", " ", "-o", work / "o.gpkg"], ["prompt is empty"]),
    ]  # fmt: skip
    for args, needles in cases:
        one_line_refusal(saymap(*args, data_dir=tmp_path), *needles)
    assert os.listdir(work) == []
