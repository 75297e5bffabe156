"""Turning what the system and GDAL raise into one sentence: a full disk, a damaged block."""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio

from saymap.engine.errors import DiskFullError, disk_full, explain
from tests.engine.generated import with_white_nodata


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_real_enospc_is_a_full_disk_naming_where() -> None:
    with pytest.raises(OSError) as caught, open("/dev/full", "w") as full:
        full.write("x")
        full.flush()
    problem = disk_full(caught.value, "/somewhere/out.gpkg")
    assert isinstance(problem, DiskFullError)
    assert "disk is full" in str(problem) and "/somewhere/out.gpkg" in str(problem)
    assert disk_full(ValueError("not a disk"), "/somewhere/out.gpkg") is None


def test_gdal_details_replace_see_previous_exception(tmp_path: Path) -> None:
    source = with_white_nodata(tmp_path / "osbs.tif").read_bytes()  # as neon_osbs, generated
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(source[: len(source) // 2])
    with rasterio.open(truncated) as dataset, pytest.raises(rasterio.errors.RasterioIOError) as e:
        dataset.read(1)
    assert "See previous exception" in str(e.value)
    text = explain(e.value)
    assert "See previous exception" not in text
    assert "truncated.tif, band 1" in text and "offset" in text
