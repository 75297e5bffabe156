"""Raster input on generated GeoTIFFs (no ../shared): checks, band maps, scaling, nodata,
black fill, window reads and descriptions, in each CRS family the real samples have."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from saymap.engine.errors import BandError, CRSError, RasterReadError
from saymap.engine.raster import WindowReader, open_raster, to_uint8
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


def test_missing_and_non_raster_files(tmp_path: Path) -> None:
    text = tmp_path / "README.md"
    text.write_text("not pixels\n")
    with pytest.raises(RasterReadError, match="not found"):
        open_raster(tmp_path / "nope.tif")
    with pytest.raises(RasterReadError, match="not a raster"):
        open_raster(text)
    with pytest.raises(OSError):  # also the builtin it resembles
        open_raster(text)


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


def test_no_crs_is_refused_unless_assumed(tmp_path: Path) -> None:
    bare = write_raster(tmp_path / "bare.tif", noise(3, 64), "utm", crs=None)
    with pytest.raises(CRSError, match="--assume-crs"):
        open_raster(bare)
    spec = open_raster(bare, assume_crs="EPSG:32617")
    assert spec.crs.to_epsg() == 32617 and spec.crs_assumed
    with pytest.raises(CRSError):
        open_raster(bare, assume_crs="EPSG:nonsense")


def test_band_maps(tmp_path: Path) -> None:
    four = float64_four_bands(tmp_path / "ms.tif")
    assert open_raster(four).bands == (1, 2, 3)
    assert open_raster(four, bands="4,3,2").bands == (4, 3, 2)
    assert open_raster(four, bands=[4]).bands == (4, 4, 4)
    with pytest.raises(BandError, match=r"band 5 is out of range.*4 band"):
        open_raster(four, bands="1,2,5")
    assert open_raster(uint16_single(tmp_path / "one.tif")).bands == (1, 1, 1)


def test_16bit_is_stretched_by_percentiles_of_its_valid_pixels(tmp_path: Path) -> None:
    path = uint16_single(tmp_path / "one.tif")  # nodata 0 on the first 30 rows
    spec = open_raster(path)
    (scale,) = set(spec.scaling)
    with rasterio.open(path) as ds:
        data = ds.read(1)
    low, high = np.percentile(data[data != 0], [2, 98])
    assert (scale.low, scale.high) == pytest.approx((low, high))  # under 1024 px: exact
    with WindowReader(spec) as reader:
        pixels, valid = reader.read(Window(0, 0, 300, 300))
    assert not valid[:30].any() and valid[30:].all()
    assert pixels.dtype == np.uint8 and np.array_equal(pixels[0], pixels[2])
    inside = valid & (data > low) & (data < high)
    fraction = (data[inside].astype(float) - low) / (high - low)
    assert np.abs(pixels[0][inside] - fraction * 255).max() <= 1
    assert (pixels[0][valid & (data >= high)] == 255).all()


def test_scaling_uses_the_band_map(tmp_path: Path) -> None:
    spec = open_raster(float64_four_bands(tmp_path / "ms.tif"), bands="4,3,2")
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


def test_nodata_value_and_black_fill_are_invalid(tmp_path: Path) -> None:
    white = open_raster(with_white_nodata(tmp_path / "white.tif"))
    assert white.nodata == 255
    with WindowReader(white) as reader, rasterio.open(white.path) as ds:
        _, valid = reader.read(Window(0, 0, 400, 400))
        holes = np.all(ds.read() == 255, axis=0)
    assert holes.sum() > 400 and np.array_equal(valid, ~holes)

    fill = open_raster(with_black_fill(tmp_path / "fill.tif"))
    assert fill.nodata is None  # the black triangle carries no nodata flag
    with WindowReader(fill) as reader:
        _, valid = reader.read(Window(0, 0, 256, 256))  # the top-left triangle is fill
        assert not valid[0, 0] and valid[255, 255] and valid.mean() < 0.6
        _, valid = reader.read(Window(256, 256, 256, 256))
        assert valid.all()

    custom = open_raster(int16_custom(tmp_path / "custom.tif"))
    with WindowReader(custom) as reader:
        _, valid = reader.read(Window(0, 0, 256, 256))
    assert not valid[:, :32].any() and valid[:, 32:].all()


def test_windows_off_the_raster_are_padded_mirrored_and_invalid(tmp_path: Path) -> None:
    spec = open_raster(rgb(tmp_path / "rgb.tif", "utm", size=400))
    with WindowReader(spec) as reader:
        pixels, valid = reader.read(Window(300, 350, 256, 256))
    assert pixels.shape == (3, 256, 256) and valid.shape == (256, 256)
    assert not valid[50:, :].any() and not valid[:, 100:].any() and valid[:50, :100].all()
    # Mirrored, not black: the model sees plausible context beyond the edge.
    assert np.array_equal(pixels[:, 50, :100], pixels[:, 49, :100])


def test_describe_names_custom_crs_and_scaling(tmp_path: Path) -> None:
    text = "\n".join(describe(int16_custom(tmp_path / "custom.tif")).lines())
    assert "custom (no EPSG code)" in text and "Albers Equal Area" in text
    assert "256 x 256 px, 3 band(s)" in text and "int16" in text and "-9999" in text
    assert "2–98 % stretch" in text and "30 x 30 metre" in text
    mercator = "\n".join(describe(with_black_fill(tmp_path / "fill.tif")).lines())
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
