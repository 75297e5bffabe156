"""A collection of rasters on generated GeoTIFFs: inputs expanded to files, files grouped
into mosaics, the work cut into units (engine/collection.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from saymap.engine.collection import expand_rasters, lay_out
from saymap.engine.errors import BandError, CRSError, OptionError, RasterReadError
from saymap.engine.raster import open_raster
from tests.engine.generated import GRIDS, noise, rgb


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


TURNED = Affine.translation(*GRIDS["rd_new"][1:3]) @ Affine.rotation(10) @ Affine.scale(0.25, -0.25)


def _tile(
    path: Path,
    data: np.ndarray,
    grid: str = "rd_new",
    *,
    col: float = 0,
    row: float = 0,
    coarser: int = 1,
    nodata: float | None = None,
    transform: Affine | None = None,
    crs: str | None = "grid",
) -> str:
    """`data` as a GeoTIFF on GRIDS[grid], its top-left `col`, `row` pixels from the grid's
    origin, pixels `coarser` times the grid's own."""
    grid_crs, west, north, pixel = GRIDS[grid]
    transform = transform or Affine(
        pixel * coarser, 0, west + col * pixel, 0, -pixel * coarser, north - row * pixel
    )
    profile = dict(
        driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype.name, crs=grid_crs if crs == "grid" else crs, nodata=nodata,
        transform=transform,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return str(path)


@pytest.mark.parametrize("grid", ["rd_new", "lonlat"])
def test_a_raster_cut_in_four_is_one_mosaic_of_the_uncut_pixels(tmp_path: Path, grid: str) -> None:
    whole = noise(3, 64, seed=5)
    cuts = [(0, 0, 40, 40), (40, 0, 24, 40), (0, 40, 40, 24), (40, 40, 24, 24)]  # col, row, w, h
    paths = [
        _tile(tmp_path / f"cut_{k}.tif", whole[:, r : r + h, c : c + w], grid, col=c, row=r)
        for k, (c, r, w, h) in enumerate(cuts)
    ]
    given = [paths[3], paths[1], paths[0], paths[2]]
    layout = lay_out(given, tmp_path / "work")
    assert len(layout.groups) == 1
    group = layout.groups[0]
    assert group.rasters == tuple(given)
    assert Path(group.mosaic).parent == tmp_path / "work" and group.mosaic.endswith(".vrt")
    with rasterio.open(group.mosaic) as mosaic, rasterio.open(paths[0]) as first:
        assert mosaic.read().tolist() == whole.tolist()
        assert mosaic.crs == first.crs
        assert mosaic.transform == first.transform
    spec = open_raster(group.mosaic)  # the pipeline reads it like a GeoTIFF
    assert (spec.width, spec.height, spec.bands, spec.nodata) == (64, 64, (1, 2, 3), None)
    assert [u.raster for u in layout.units] == given
    assert [u.index for u in layout.units] == [0, 1, 2, 3]
    assert [u.label for u in layout.units] == [Path(p).name for p in given]
    for unit in layout.units:
        with rasterio.open(unit.raster) as dataset:
            assert unit.bounds == tuple(dataset.bounds)


def test_rasters_apart_or_in_other_crs_are_groups_of_their_own(tmp_path: Path) -> None:
    data = noise(3, 16)
    paths = [
        _tile(tmp_path / "a.tif", data),
        _tile(tmp_path / "utm.tif", data, "utm"),
        _tile(tmp_path / "far.tif", data, col=1000),
        _tile(tmp_path / "gap.tif", data, col=16.4),  # 0.4 px from a.tif: touching
        _tile(tmp_path / "crs_as_wkt.tif", data, col=32.4, crs=GRIDS["rd_new"][0]),
        _tile(tmp_path / "corner.tif", data, col=1016, row=16),  # far.tif's corner
        _tile(tmp_path / "apart.tif", data, col=50),  # 1.6 px from crs_as_wkt.tif
    ]
    wkt = rasterio.crs.CRS.from_epsg(28992).to_wkt(version="WKT2_2019")
    with rasterio.open(paths[4], "r+") as dataset:
        dataset.crs = rasterio.crs.CRS.from_wkt(wkt)  # the same CRS written another way
    layout = lay_out(paths, tmp_path / "work")
    assert [g.rasters for g in layout.groups] == [
        (paths[0], paths[3], paths[4]),
        (paths[1],),
        (paths[2], paths[5]),
        (paths[6],),
    ]
    assert [g.mosaic for g in layout.groups][1:4:2] == [paths[1], paths[6]]
    assert [u.group for u in layout.units] == [0, 1, 2, 0, 0, 2, 3]
    assert rasterio.crs.CRS.from_wkt(layout.groups[1].crs_wkt) == rasterio.crs.CRS.from_epsg(32617)
    alone = lay_out([paths[1]], tmp_path / "untouched")
    assert alone.groups[0].mosaic == paths[1]
    assert not (tmp_path / "untouched").exists()  # a lone raster needs no VRT


def test_big_rasters_are_cut_into_blocks_that_tile_them(tmp_path: Path) -> None:
    small = _tile(tmp_path / "small.tif", noise(3, 16))
    big = _tile(tmp_path / "big.tif", noise(3, 1, seed=1).repeat(70, 1).repeat(100, 2), col=500)
    layout = lay_out([small, big], tmp_path / "work", block_px=32)
    assert len(layout.units) == 1 + 4 * 3
    blocks = layout.units[1:]
    assert [u.index for u in layout.units] == list(range(13))
    assert [u.label for u in blocks[:2]] == ["big.tif block 1 of 12", "big.tif block 2 of 12"]
    assert {u.raster for u in blocks} == {big} and {u.group for u in blocks} == {1}
    with rasterio.open(big) as dataset:
        whole, transform = box(*dataset.bounds), dataset.transform
    boxes = [box(*u.bounds) for u in blocks]
    assert sum(b.area for b in boxes) == pytest.approx(whole.area, rel=1e-12)
    for i, a in enumerate(boxes):
        assert whole.covers(a)
        assert all(a.intersection(b).area == 0 for b in boxes[i + 1 :])
        cols, rows = ~transform @ (a.bounds[0], a.bounds[3])
        width, height = (a.bounds[2] - a.bounds[0]) / 0.25, (a.bounds[3] - a.bounds[1]) / 0.25
        assert [round(v, 9) % 1 for v in (cols, rows)] == [0, 0]  # on pixel edges
        assert 1 <= width <= 32 and 1 <= height <= 32
    assert layout.units == lay_out([small, big], tmp_path / "again", block_px=32).units


def test_mixed_resolutions_nodata_and_gaps_in_one_mosaic(tmp_path: Path) -> None:
    fine = noise(1, 32, seed=3).astype(np.int16)
    coarse = np.full((1, 16, 16), 100, np.int16)
    coarse[0, 12:, 12:] = -9999  # nodata: the mosaic's own nodata shows through
    paths = [  # the coarse raster's first two columns lie under the fine one's last four
        _tile(tmp_path / "fine.tif", fine, nodata=-9999),
        _tile(tmp_path / "coarse.tif", coarse, col=28, row=16, coarser=2, nodata=-9999),
    ]
    layout = lay_out(paths, tmp_path / "work")
    with rasterio.open(layout.groups[0].mosaic) as mosaic:
        assert (mosaic.width, mosaic.height, mosaic.res) == (60, 48, (0.25, 0.25))
        assert (mosaic.dtypes, mosaic.nodata) == (("int16",), -9999)
        pixels = mosaic.read(1)
    assert pixels[:32, :32].tolist() == fine[0].tolist()  # the earlier raster owns the overlap
    assert (pixels[16:40, 32:52] == 100).all()  # the coarse one, enlarged
    assert (pixels[41:, 53:] == -9999).all()  # (bilinear blurs the edge by a pixel)
    assert (pixels[32:, :28] == -9999).all() and (pixels[:16, 32:] == -9999).all()  # gaps
    assert open_raster(layout.groups[0].mosaic).nodata == -9999


def test_rasters_that_cannot_be_mosaicked(tmp_path: Path) -> None:
    rgb_tile = _tile(tmp_path / "rgb.tif", noise(3, 16))
    cases = {
        "four.tif": (noise(4, 16), {}, "3 band.s. of uint8 but .*four.tif has 4 band"),
        "wide.tif": (noise(3, 16).astype(np.uint16), {}, "but .*wide.tif has 3 band.s. of uint16"),
        "turned.tif": (
            noise(3, 16),
            {"transform": TURNED},
            "turned.tif has a rotated, sheared or south-up geotransform and touches .*rgb.tif",
        ),
    }
    for name, (data, extra, message) in cases.items():
        other = _tile(tmp_path / name, data, col=16, **extra)
        with pytest.raises(RasterReadError, match=message) as caught:
            lay_out([rgb_tile, other], tmp_path / "work")
        assert "\n" not in str(caught.value)
        if name == "turned.tif":  # alone, a rotated raster is one unit, as before
            layout = lay_out([other], tmp_path / "work", block_px=4)
            assert [(g.mosaic, len(layout.units)) for g in layout.groups] == [(other, 1)]
    assert not (tmp_path / "work").exists()  # refused before anything was written


def test_crs_bands_and_block_checks_are_open_rasters(tmp_path: Path) -> None:
    paths = [_tile(tmp_path / f"{k}.tif", noise(3, 16), col=16 * k, crs=None) for k in range(2)]
    with pytest.raises(CRSError, match=r"0\.tif has no coordinate reference system"):
        lay_out(paths, tmp_path / "work")
    layout = lay_out(paths, tmp_path / "work", assume_crs="EPSG:28992", bands="3,2,1")
    assert len(layout.groups) == 1
    assert open_raster(layout.groups[0].mosaic).crs == rasterio.crs.CRS.from_epsg(28992)
    with pytest.raises(BandError, match=r"band 4 is out of range: .*0\.tif"):
        lay_out(paths, tmp_path / "work", assume_crs="EPSG:28992", bands="4")
    with pytest.raises(OptionError, match="block size"):
        lay_out(paths, tmp_path / "work", assume_crs="EPSG:28992", block_px=0)
