"""Raster input: checks, band maps, scaling, nodata, black fill, window reads and
descriptions, each check on a generated raster (runs everywhere) and on the real sample it
stands in for (tests/engine/twins.py), and each CRS family on generated rasters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from saymap.engine.errors import BandError, CRSError, RasterReadError
from saymap.engine.raster import (
    WindowReader,
    invalid_pixels,
    open_raster,
    parse_bands,
    to_uint8,
)
from saymap.engine.raster_info import describe
from tests.engine.generated import (
    GRIDS,
    float64_four_bands,
    int16_custom,
    noise,
    rgb,
    uint16_single,
    with_black_fill,
    with_black_lake,
    with_white_nodata,
    write_raster,
)
from tests.engine.painting import without_crs
from tests.engine.twins import SIDES, side_of


@dataclass(frozen=True)
class Side:
    """The rasters the raster-input checks run on."""

    not_a_raster: Path  # a text file
    located: tuple[Path, int]  # 8-bit RGB and its CRS's EPSG code (hro_colorado)
    rd_new: Path  # 8-bit RGB in EPSG:28992 (nl_gorinchem)
    four_bands: Path  # four float64 bands (spacenet_rotterdam's ms1)
    one_band: Path  # one uint16 band, nodata 0 (spacenet_atlanta)
    white_nodata: Path  # 8-bit RGB, nodata 255 on scattered white pixels (neon_osbs)
    edge: Path  # 400 x 400 px 8-bit RGB (neon_osbs)
    black_fill: Path  # a black triangle of fill from the top-left corner (oam_manila)
    clear: Window  # a window of black_fill with no fill
    custom: Path  # int16 RGB in a custom Albers WKT, nodata -9999 (spacenet_custom_proj)
    custom_px: int  # custom's width and height


def generated(folder: Path) -> Side:
    readme = folder / "README.md"
    readme.write_text("not pixels\n")
    return Side(
        not_a_raster=readme,
        located=(write_raster(folder / "utm.tif", noise(3, 64), "utm"), 32617),
        rd_new=rgb(folder / "rd_new.tif"),  # 512 px
        four_bands=float64_four_bands(folder / "ms.tif"),
        one_band=uint16_single(folder / "one.tif"),  # nodata 0 on the first 30 rows
        white_nodata=with_white_nodata(folder / "white.tif"),
        edge=rgb(folder / "edge.tif", "utm", size=400),
        black_fill=with_black_fill(folder / "fill.tif"),  # 512 px
        clear=Window(256, 256, 256, 256),
        custom=int16_custom(folder / "custom.tif"),  # nodata on the first 32 columns
        custom_px=256,
    )


def real(data: Path) -> Side:
    neon = data / "neon_osbs" / "OSBS_029.tif"
    colorado = data / "hro_colorado" / "201404_13SED190110_201404_0x1500m_CL_1.tif"
    return Side(
        not_a_raster=data / "README.md",
        located=(colorado, 26913),
        rd_new=data / "nl_gorinchem" / "test_tiled.tif",
        four_bands=data / "spacenet_rotterdam" / "ms1.tif",
        one_band=data / "spacenet_atlanta" / "sample_geotiff.tif",
        white_nodata=neon,
        edge=neon,
        black_fill=data / "oam_manila" / "5b90f92da0d7280005fab355_4310.tif",  # 2048 px
        clear=Window(1700, 1700, 256, 256),
        custom=data / "spacenet_custom_proj" / "sample_geotiff_custom_proj.tif",
        custom_px=512,
    )


@pytest.fixture(scope="module", params=SIDES)
def side(request: pytest.FixtureRequest) -> Side:
    return side_of(request, generated, real)


def test_missing_and_non_raster_files(side: Side, tmp_path: Path) -> None:
    with pytest.raises(RasterReadError, match="not found"):
        open_raster(tmp_path / "nope.tif")
    with pytest.raises(RasterReadError, match="not a raster"):
        open_raster(side.not_a_raster)
    with pytest.raises(OSError):  # also the builtin it resembles
        open_raster(side.not_a_raster)


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_each_crs_is_read_as_written(grid: str, tmp_path: Path) -> None:
    path = rgb(tmp_path / f"{grid}.tif", grid, size=128)
    spec = open_raster(path)
    with rasterio.open(path) as ds:
        assert spec.crs == ds.crs and spec.transform == ds.transform
        assert not spec.crs_assumed
        window = Window(10, 20, 64, 64)
        with WindowReader(spec) as reader:
            pixels, valid = reader.read(window)
        assert np.array_equal(pixels, ds.read(window=window)) and valid.all()


def test_no_crs_is_refused_unless_assumed(side: Side, tmp_path: Path) -> None:
    source, epsg = side.located
    bare = without_crs(source, tmp_path / "bare.tif")
    with pytest.raises(CRSError, match="--assume-crs"):
        open_raster(bare)
    spec = open_raster(bare, assume_crs=f"EPSG:{epsg}")
    assert spec.crs.to_epsg() == epsg and spec.crs_assumed
    with pytest.raises(CRSError):
        open_raster(bare, assume_crs="EPSG:nonsense")


def test_band_maps(side: Side) -> None:
    assert open_raster(side.four_bands).bands == (1, 2, 3)
    assert open_raster(side.four_bands, bands="4,3,2").bands == (4, 3, 2)
    assert open_raster(side.four_bands, bands=[4]).bands == (4, 4, 4)
    with pytest.raises(BandError, match=r"band 5 is out of range.*4 band"):
        open_raster(side.four_bands, bands="1,2,5")
    with pytest.raises(BandError):
        parse_bands("1,2")
    with pytest.raises(BandError):
        parse_bands("red,green,blue")
    assert open_raster(side.one_band).bands == (1, 1, 1)


def test_8bit_is_used_as_is(side: Side) -> None:
    spec = open_raster(side.rd_new)
    assert all(s.as_is for s in spec.scaling)
    window = Window(100, 200, 64, 64)
    with WindowReader(spec) as reader, rasterio.open(side.rd_new) as ds:
        pixels, valid = reader.read(window)
        assert np.array_equal(pixels, ds.read(window=window))
    assert valid.all()


def test_16bit_is_stretched_by_percentiles_of_its_valid_pixels(side: Side) -> None:
    spec = open_raster(side.one_band)  # nodata 0
    (scale,) = set(spec.scaling)
    with rasterio.open(side.one_band) as ds:
        data = ds.read(1)
    low, high = np.percentile(data[data != 0], [2, 98])
    # The sample is decimated only for rasters over 1024 px, so these are exact.
    assert (scale.low, scale.high) == pytest.approx((low, high))
    with WindowReader(spec) as reader:
        pixels, valid = reader.read(Window(0, 0, *data.shape[::-1]))
    assert np.array_equal(valid, data != 0)
    assert pixels.dtype == np.uint8 and np.array_equal(pixels[0], pixels[2])
    inside = valid & (data > low) & (data < high)
    fraction = (data[inside].astype(float) - low) / (high - low)
    assert np.abs(pixels[0][inside] - fraction * 255).max() <= 1
    assert (pixels[0][valid & (data >= high)] == 255).all()


def test_scaling_uses_the_band_map(side: Side) -> None:
    spec = open_raster(side.four_bands, bands="4,3,2")
    assert [s.band for s in spec.scaling] == [4, 3, 2]
    with WindowReader(spec) as reader:
        pixels, _ = reader.read(Window(0, 0, 300, 300))
    assert pixels.dtype == np.uint8 and pixels.std() > 10
    converted = to_uint8(np.full((3, 1, 1), spec.scaling[0].high), spec.scaling)
    assert converted[0, 0, 0] == 255


def test_black_inside_the_image_is_ground_black_on_its_edge_is_fill(tmp_path: Path) -> None:
    """All-zero pixels with no nodata flag: fill where they reach the raster's edge (a
    warped footprint's corner), data where they lie only inside it (clipped deep water)."""
    lake = open_raster(with_black_lake(tmp_path / "lake.tif"))
    fill = open_raster(with_black_fill(tmp_path / "fill.tif"))
    assert not lake.zero_is_fill and fill.zero_is_fill
    with WindowReader(lake) as reader, rasterio.open(lake.path) as ds:
        pixels, valid = reader.read(Window(0, 0, 512, 512))
        black = np.all(ds.read() == 0, axis=0)
    assert black.sum() > 5000 and valid.all()  # the lake is segmented like any ground
    assert np.all(pixels[:, black] == 0)


def test_nodata_value_is_invalid(side: Side) -> None:
    white = open_raster(side.white_nodata)
    assert white.nodata == 255
    with WindowReader(white) as reader, rasterio.open(white.path) as ds:
        _, valid = reader.read(Window(0, 0, 400, 400))
        holes = np.all(ds.read() == 255, axis=0)
    assert holes.sum() > 400 and np.array_equal(valid, ~holes)

    custom = open_raster(side.custom)
    with WindowReader(custom) as reader, rasterio.open(custom.path) as ds:
        _, valid = reader.read(custom.full_window)
        assert np.array_equal(valid, ~np.all(ds.read() == -9999, axis=0))
    raw = np.array([[[-9999, 5]], [[-9999, 0]], [[-9999, 7]]], np.int16)  # (3, 1, 2)
    assert invalid_pixels(raw, custom.nodata).tolist() == [[True, False]]
    assert invalid_pixels(np.zeros((3, 1, 1), np.uint8), None).all()
    floats = np.array([[[np.nan, 1.0]], [[0.5, 1.0]], [[0.5, 1.0]]])
    assert invalid_pixels(floats, None).tolist() == [[True, False]]
    alpha = np.array([[0, 255]], np.uint8)
    assert invalid_pixels(np.ones((3, 1, 2)), None, alpha).tolist() == [[True, False]]


def test_black_fill_is_invalid(side: Side) -> None:
    fill = open_raster(side.black_fill)
    assert fill.nodata is None  # the black triangle carries no nodata flag
    corner = Window(0, 0, 256, 256)  # the top-left triangle is fill
    with WindowReader(fill) as reader, rasterio.open(fill.path) as ds:
        _, valid = reader.read(corner)
        assert not valid[0, 0] and valid.mean() < 0.5
        assert np.array_equal(valid, ~np.all(ds.read(window=corner) == 0, axis=0))
        _, valid = reader.read(side.clear)
        assert valid.all()


def test_windows_off_the_raster_are_padded_mirrored_and_invalid(side: Side) -> None:
    spec = open_raster(side.edge)  # 400 x 400
    with WindowReader(spec) as reader, rasterio.open(side.edge) as ds:
        pixels, valid = reader.read(Window(300, 350, 256, 256))
        inside = ds.read(window=Window(300, 350, 100, 50))
    assert pixels.shape == (3, 256, 256) and valid.shape == (256, 256)
    assert not valid[50:, :].any() and not valid[:, 100:].any()
    holes = np.all(inside == spec.nodata, axis=0)  # none where there is no nodata value
    assert np.array_equal(valid[:50, :100], ~holes) and valid[:50, :100].mean() > 0.9
    # Mirrored, not black: the model sees plausible context beyond the edge.
    assert np.array_equal(pixels[:, 50, :100], pixels[:, 49, :100])


def test_describe_names_custom_crs_and_scaling(side: Side) -> None:
    info = describe(side.custom)
    text = "\n".join(info.lines())
    assert info.crs_epsg is None
    assert "custom (no EPSG code)" in text and "Albers Equal Area" in text
    size = f"{side.custom_px} x {side.custom_px} px, 3 band(s)"
    assert size in text and "int16" in text and "-9999" in text
    assert "2–98 % stretch" in text and "30 x 30 metre" in text
    mercator = "\n".join(describe(side.black_fill).lines())
    assert "EPSG:3395" in mercator and "8-bit, used as is" in mercator


def test_large_float_raster_is_sampled_not_read_whole(tmp_path: Path) -> None:
    """A 3000 x 3000 float raster: the percentiles come from a ≤1024 px decimated read."""
    path = tmp_path / "big.tif"
    profile = dict(
        driver="GTiff", width=3000, height=3000, count=1, dtype="float32", crs="EPSG:32633",
        transform=Affine(1, 0, 500000, 0, -1, 0), tiled=True, compress="deflate",
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, 3000, 500):
            ramp = np.tile(np.linspace(0, 1000, 3000, dtype=np.float32), (500, 1))
            dst.write(ramp, 1, window=Window(0, row, 3000, 500))
    spec = open_raster(path)
    scale = spec.scaling[0]
    assert scale.low == pytest.approx(20, abs=2) and scale.high == pytest.approx(980, abs=2)
