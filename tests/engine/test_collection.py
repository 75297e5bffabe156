"""A collection of rasters on generated GeoTIFFs: inputs expanded to files, files grouped
into mosaics, the work cut into units (engine/collection.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from saymap.engine.collection import expand_rasters
from saymap.engine.errors import RasterReadError
from tests.engine.generated import rgb


def _three(folder: Path) -> list[Path]:
    """tile_0.tif, tile_1.tif, tile_2.tif, written in another order than their names'."""
    folder.mkdir()
    for i in (2, 0, 1):
        rgb(folder / f"tile_{i}.tif", size=16, seed=i)
    return [folder / f"tile_{i}.tif" for i in range(3)]


def test_folder_glob_and_plain_paths(tmp_path: Path) -> None:
    tiles = _three(tmp_path / "tiles")
    (tmp_path / "tiles" / "notes.md").write_text("not a raster\n")
    (tmp_path / "tiles" / "tile_0.tif.aux.xml").write_text("<PAMDataset/>\n")
    (tmp_path / "tiles" / "deeper").mkdir()
    rgb(tmp_path / "tiles" / "deeper" / "hidden.tif", size=16)
    expected = [str(p) for p in tiles]
    assert expand_rasters([str(tmp_path / "tiles")]) == expected
    assert expand_rasters([tmp_path / "tiles" / "tile_*.tif"]) == expected
    assert expand_rasters([str(tiles[2]), str(tiles[0])]) == [expected[2], expected[0]]


def test_list_file_relative_paths_and_comments(tmp_path: Path) -> None:
    tiles = _three(tmp_path / "tiles")
    listing = tmp_path / "lists" / "my.lst"
    listing.parent.mkdir()
    listing.write_text(
        "# the north strip\n\n../tiles/tile_1.tif\n  ../tiles/tile_0.tif  \n"
        f"{tiles[0]}\n"  # absolute, and the same file as the line above
    )
    assert expand_rasters([str(listing)]) == [str(tiles[1]), str(tiles[0])]
    (tmp_path / "tiles.txt").write_text("tiles/tile_2.tif\n")
    assert expand_rasters([str(tmp_path / "tiles.txt")]) == [str(tiles[2])]


def test_duplicates_keep_their_first_place(tmp_path: Path) -> None:
    tiles = _three(tmp_path / "tiles")
    os.symlink(tiles[1], tmp_path / "alias.tif")
    got = expand_rasters([
        str(tiles[1]),
        str(tmp_path / "tiles"),
        str(tmp_path / "alias.tif"),
        str(tmp_path / "tiles" / ".." / "tiles" / "tile_2.tif"),
    ])  # fmt: skip
    assert got == [str(tiles[1]), str(tiles[0]), str(tiles[2])]


def test_inputs_that_name_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    (tmp_path / "broken.txt").write_text("a.tif\nmissing.tif\n")
    rgb(tmp_path / "a.tif", size=16)
    cases = {
        str(tmp_path / "nope.tif"): "raster not found: .*nope.tif",
        str(tmp_path / "empty"): "folder .*empty holds no raster",
        str(tmp_path / "*.jp2"): r"no raster file matches .*\*\.jp2",
        str(tmp_path / "empty.txt"): "empty.txt names no raster",
        str(tmp_path / "broken.txt"): "broken.txt line 2: raster not found: .*missing.tif",
    }
    for given, message in cases.items():
        with pytest.raises(RasterReadError, match=message) as caught:
            expand_rasters([str(tmp_path / "a.tif"), given])
        assert "\n" not in str(caught.value)
    with pytest.raises(RasterReadError, match="no raster given"):
        expand_rasters([])
