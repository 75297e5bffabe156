"""Raster input on the real samples (the second layer of test_raster_generated.py): checks,
band maps, scaling, masks, window reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
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
from tests.conftest import skip_module_without_real_data

skip_module_without_real_data(
    "raster input on real samples (test_raster_generated.py runs everywhere)"
)
pytestmark = pytest.mark.real_data


def test_missing_and_non_raster_files(real_data: Path, tmp_path: Path) -> None:
    with pytest.raises(RasterReadError, match="not found"):
        open_raster(tmp_path / "nope.tif")
    with pytest.raises(RasterReadError, match="not a raster"):
        open_raster(real_data / "README.md")
    with pytest.raises(OSError):  # also the builtin it resembles
        open_raster(real_data / "README.md")


def test_no_crs_is_refused_unless_assumed(real_data: Path, tmp_path: Path) -> None:
    colorado = real_data / "hro_colorado" / "201404_13SED190110_201404_0x1500m_CL_1.tif"
    with rasterio.open(colorado) as src:
        profile, data = src.profile, src.read()
    profile.update(crs=None)
    bare = tmp_path / "bare.tif"
    with rasterio.open(bare, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(CRSError, match="--assume-crs"):
        open_raster(bare)
    spec = open_raster(bare, assume_crs="EPSG:26913")
    assert spec.crs.to_epsg() == 26913 and spec.crs_assumed
    with pytest.raises(CRSError):
        open_raster(bare, assume_crs="EPSG:nonsense")


def test_band_maps(real_data: Path) -> None:
    rotterdam = real_data / "spacenet_rotterdam" / "ms1.tif"  # 4 bands, float64
    assert open_raster(rotterdam).bands == (1, 2, 3)
    assert open_raster(rotterdam, bands="4,3,2").bands == (4, 3, 2)
    assert open_raster(rotterdam, bands=[4]).bands == (4, 4, 4)
    with pytest.raises(BandError, match=r"band 5 is out of range.*4 band"):
        open_raster(rotterdam, bands="1,2,5")
    with pytest.raises(BandError):
        parse_bands("1,2")
    with pytest.raises(BandError):
        parse_bands("red,green,blue")
    atlanta = real_data / "spacenet_atlanta" / "sample_geotiff.tif"  # single band
    assert open_raster(atlanta).bands == (1, 1, 1)


def test_8bit_is_used_as_is(real_data: Path) -> None:
    path = real_data / "nl_gorinchem" / "test_tiled.tif"
    spec = open_raster(path)
    assert all(s.as_is for s in spec.scaling)
    window = Window(100, 200, 64, 64)
    with WindowReader(spec) as reader, rasterio.open(path) as ds:
        pixels, valid = reader.read(window)
        assert np.array_equal(pixels, ds.read(window=window))
    assert valid.all()


def test_16bit_is_stretched_by_percentiles_of_a_decimated_read(real_data: Path) -> None:
    path = real_data / "spacenet_atlanta" / "sample_geotiff.tif"  # uint16, nodata 0
    spec = open_raster(path)
    (scale,) = {s for s in spec.scaling}
    with rasterio.open(path) as ds:
        data = ds.read(1)
    good = data[data != 0]
    low, high = np.percentile(good, [2, 98])
    # The sample is decimated only for rasters over 1024 px, so this one is exact.
    assert (scale.low, scale.high) == pytest.approx((low, high))
    with WindowReader(spec) as reader:
        pixels, valid = reader.read(Window(0, 0, 900, 900))
    assert pixels.dtype == np.uint8 and np.array_equal(pixels[0], pixels[2])
    inside = valid & (data > low) & (data < high)
    fraction = (data[inside].astype(float) - low) / (high - low)
    assert np.abs(pixels[0][inside] - fraction * 255).max() <= 1
    assert (pixels[0][valid & (data >= high)] == 255).all()


def test_nodata_and_black_fill_are_invalid(real_data: Path) -> None:
    manila = open_raster(real_data / "oam_manila" / "5b90f92da0d7280005fab355_4310.tif")
    assert manila.nodata is None  # the black triangle carries no nodata flag
    with WindowReader(manila) as reader:
        _, valid = reader.read(Window(0, 0, 256, 256))  # the top-left triangle is fill
        assert not valid[0, 0] and valid.mean() < 0.5
        _, valid = reader.read(Window(1700, 1700, 256, 256))
        assert valid.all()

    custom = open_raster(real_data / "spacenet_custom_proj" / "sample_geotiff_custom_proj.tif")
    raw = np.array([[[-9999, 5]], [[-9999, 0]], [[-9999, 7]]], np.int16)  # (3, 1, 2)
    assert invalid_pixels(raw, custom.nodata).tolist() == [[True, False]]
    assert invalid_pixels(np.zeros((3, 1, 1), np.uint8), None).all()
    floats = np.array([[[np.nan, 1.0]], [[0.5, 1.0]], [[0.5, 1.0]]])
    assert invalid_pixels(floats, None).tolist() == [[True, False]]
    alpha = np.array([[0, 255]], np.uint8)
    assert invalid_pixels(np.ones((3, 1, 2)), None, alpha).tolist() == [[True, False]]


def test_windows_off_the_raster_are_padded_and_invalid(real_data: Path) -> None:
    spec = open_raster(real_data / "neon_osbs" / "OSBS_029.tif")  # 400 x 400
    with WindowReader(spec) as reader:
        pixels, valid = reader.read(Window(300, 350, 256, 256))
    assert pixels.shape == (3, 256, 256) and valid.shape == (256, 256)
    assert not valid[50:, :].any() and not valid[:, 100:].any()
    assert valid[:50, :100].mean() > 0.9
    # Mirrored, not black: the model sees plausible context beyond the edge.
    assert np.array_equal(pixels[:, 50, :100], pixels[:, 49, :100])


def test_scaling_uses_the_band_map(real_data: Path) -> None:
    spec = open_raster(real_data / "spacenet_rotterdam" / "ms1.tif", bands="4,3,2")
    assert [s.band for s in spec.scaling] == [4, 3, 2]
    with WindowReader(spec) as reader:
        pixels, _ = reader.read(Window(0, 0, 300, 300))
    assert pixels.dtype == np.uint8 and pixels.std() > 10
    converted = to_uint8(np.full((3, 1, 1), spec.scaling[0].high), spec.scaling)
    assert converted[0, 0, 0] == 255


def test_describe_names_custom_crs_and_scaling(real_data: Path) -> None:
    info = describe(real_data / "spacenet_custom_proj" / "sample_geotiff_custom_proj.tif")
    text = "\n".join(info.lines())
    assert info.crs_epsg is None
    assert "custom (no EPSG code)" in text and "Albers Equal Area" in text
    assert "512 x 512 px, 3 band(s)" in text and "int16" in text and "-9999" in text
    assert "2–98 % stretch" in text and "30 x 30 metre" in text
    manila_path = real_data / "oam_manila" / "5b90f92da0d7280005fab355_4310.tif"
    manila = "\n".join(describe(manila_path).lines())
    assert "EPSG:3395" in manila and "8-bit, used as is" in manila
