"""The tiled pipeline end to end: batching, tile borders, nodata, black fill, AOI,
cancelling, outputs and bad requests, each check on a generated raster (runs everywhere)
and on the real sample it stands in for (tests/engine/twins.py), and a box in each CRS
family on generated rasters.

Real pipeline runs: GeoTIFFs on disk, the reader thread, blending, probability GeoTIFF
and GeoPackage; the deterministic `BrightnessSegmenter` finds exactly the bright boxes
painted in, so every expected answer is known in advance.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
import torch
from pyproj import CRS, Transformer

from saymap.engine.aoi import AOI
from saymap.engine.device import choose_device
from saymap.engine.errors import (
    Cancelled,
    DeviceError,
    OptionError,
    OutputError,
    PromptError,
    RasterReadError,
)
from saymap.engine.infer import SegmentOptions, segment_raster
from tests.engine.brightness import BrightnessConfig, RecordingSegmenter
from tests.engine.generated import GRIDS, rgb, with_black_fill, with_white_nodata
from tests.engine.painting import Box, box_in_map, paint_copy, read_features
from tests.engine.twins import SIDES, side_of

OPTIONS = SegmentOptions(tile=128, overlap=32, batch_size=4, device="cpu")


@dataclass(frozen=True)
class Side:
    """The rasters the pipeline checks run on, and the numbers that follow from their size."""

    rd_new: Path  # 8-bit RGB in EPSG:28992, no nodata (like nl_gorinchem)
    utm: Path  # 8-bit RGB in UTM, 400 px (like neon_osbs)
    white_nodata: Path  # 8-bit RGB, nodata 255 on scattered white pixels (neon_osbs)
    black_fill: Path  # a black triangle of fill with no nodata flag (oam_manila)
    tiles: int  # tiles of 128 px stepping by 96 over rd_new
    long_box: Box  # a box across several tiles of rd_new
    far_box: Box  # a box of rd_new far from (100, 200, 100, 200)
    fill_tile: int  # the tile for black_fill: some tiles are pure fill


def generated(folder: Path) -> Side:
    return Side(
        rd_new=rgb(folder / "rd_new.tif"),  # 512 px
        utm=rgb(folder / "utm.tif", "utm", size=400),
        white_nodata=with_white_nodata(folder / "white.tif"),
        black_fill=with_black_fill(folder / "fill.tif", size=768),
        tiles=25,  # (1 + ceil((512 - 128) / 96)) ** 2
        long_box=(300, 400, 200, 500),
        far_box=(350, 450, 350, 450),
        fill_tile=128,
    )


def real(data: Path) -> Side:
    neon = data / "neon_osbs" / "OSBS_029.tif"
    return Side(
        rd_new=data / "nl_gorinchem" / "test_tiled.tif",  # 1000 px
        utm=neon,
        white_nodata=neon,
        black_fill=data / "oam_manila" / "5b90f92da0d7280005fab355_4310.tif",  # 2048 px
        tiles=121,  # (1 + ceil((1000 - 128) / 96)) ** 2
        long_box=(300, 400, 200, 700),
        far_box=(600, 700, 600, 700),
        fill_tile=256,
    )


@pytest.fixture(scope="module", params=SIDES)
def side(request: pytest.FixtureRequest) -> Side:
    return side_of(request, generated, real)


def painted(source: Path, tmp_path: Path, boxes: list[Box]) -> Path:
    """A copy of `source` in tmp_path with `boxes` bright and the rest dimmed (painted.tif)."""
    target = tmp_path / "painted.tif"
    paint_copy(source, target, boxes)
    return target


def test_prompts_encoded_once_and_tiles_batched(side: Side, tmp_path: Path) -> None:
    raster = painted(side.rd_new, tmp_path, [side.long_box])
    model = RecordingSegmenter()
    calls: list[tuple[int, int, str]] = []
    result = segment_raster(
        raster, ["tank", "boat"], tmp_path / "out.gpkg", model=model, options=OPTIONS,
        progress=lambda done, total, message: calls.append((done, total, message)),
    )  # fmt: skip
    assert model.encoded == [["tank"], ["boat"]]  # once per prompt, not per tile
    assert result.tiles == side.tiles == result.tiles_run
    assert all(shape[0] <= 4 and shape[1:] == (3, 128, 128) for shape in model.batches)
    assert sum(shape[0] for shape in model.batches) == 2 * result.tiles  # each prompt
    assert max(shape[0] for shape in model.batches) == 4
    dones = [done for done, _, message in calls if message != "vectorising"]
    assert dones == sorted(dones) and dones[-1] == side.tiles
    assert {t for _, t, _ in calls} == {side.tiles}
    _, fields = read_features(tmp_path / "out.gpkg")
    assert sorted(fields["prompt"]) == ["boat", "tank"]  # the same box for both prompts
    assert result.features_per_prompt == {"tank": 1, "boat": 1} and result.n_features == 2
    assert result.device == "cpu" and "cpu" in result.device_reason


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_a_box_comes_back_where_it_is_in_each_crs(grid: str, tmp_path: Path) -> None:
    """The polygon is the painted box in the raster's own CRS (EPSG, degrees, custom WKT),
    and the GeoPackage says that CRS."""
    box = (60, 140, 90, 200)
    raster = painted(rgb(tmp_path / f"{grid}.tif", grid, size=256), tmp_path, [box])
    segment_raster(raster, ["x"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                   options=OPTIONS)  # fmt: skip
    (shape,), _ = read_features(tmp_path / "out.gpkg")
    with rasterio.open(raster) as ds:
        expected = box_in_map(ds.transform, box)
        raster_crs = ds.crs
    assert shape.symmetric_difference(expected).area < 1e-6 * expected.area
    written = CRS.from_user_input(pyogrio.read_info(tmp_path / "out.gpkg", layer="saymap")["crs"])
    assert written == CRS.from_user_input(raster_crs.to_wkt())


def test_object_crossing_many_tile_borders_is_one_polygon(side: Side, tmp_path: Path) -> None:
    boxes = [(100, 400, 100, 160), (340, 400, 100, 500)]  # an L over 3 x 4 tiles
    raster = painted(side.rd_new, tmp_path, boxes)
    segment_raster(raster, ["L"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                   options=OPTIONS)  # fmt: skip
    (shape,), _ = read_features(tmp_path / "out.gpkg")
    with rasterio.open(raster) as ds:
        expected = box_in_map(ds.transform, boxes[0]).union(box_in_map(ds.transform, boxes[1]))
    assert shape.symmetric_difference(expected).area < 1e-6


def test_nodata_pixels_are_never_segmented(side: Side, tmp_path: Path) -> None:
    """White nodata pixels (255) are bright: the brightness segmenter would find them if
    the mask did not hold. Only the painted box comes back."""
    raster = painted(side.white_nodata, tmp_path, [(20, 100, 150, 300)])
    probabilities = tmp_path / "p.tif"
    options = SegmentOptions(tile=128, overlap=32, device="cpu", min_area_px=0,
                             probabilities_path=str(probabilities))  # fmt: skip
    result = segment_raster(raster, ["x"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                            options=options)  # fmt: skip
    assert result.n_features == 1
    with rasterio.open(raster) as src, rasterio.open(probabilities) as probs:
        nodata = np.all(src.read() == 255, axis=0)
        values = probs.read(1)
    assert nodata.sum() > 400
    assert (values[nodata] == 0).all()


def test_black_fill_is_never_segmented_and_skips_the_model(side: Side, tmp_path: Path) -> None:
    """A black triangle with no nodata flag: a segmenter that calls everything the target
    must still leave the fill out, and tiles of pure fill skip the model."""
    source, tile = side.black_fill, side.fill_tile
    everything = RecordingSegmenter(BrightnessConfig(tile_size=tile, level=-1.0))
    result = segment_raster(
        source, ["everything"], tmp_path / "out.gpkg", model=everything,
        options=SegmentOptions(tile=tile, overlap=32, device="cpu", max_hole_px=0),
    )  # fmt: skip
    assert result.tiles_run < result.tiles
    geometries, _ = read_features(tmp_path / "out.gpkg")
    with rasterio.open(source) as ds:
        fill = np.all(ds.read() == 0, axis=0)
        pixel_area = abs(ds.transform.a * ds.transform.e)
        corner = shapely.Point(ds.transform @ (5, 5))
    found = shapely.union_all(geometries)
    assert found.area == pytest.approx((~fill).sum() * pixel_area, rel=0.002)
    assert not found.contains(corner)


def test_polygon_aoi_in_lonlat_keeps_only_what_is_inside(side: Side, tmp_path: Path) -> None:
    raster = painted(side.rd_new, tmp_path, [(100, 200, 100, 200), side.far_box])
    with rasterio.open(raster) as ds:
        around_first = box_in_map(ds.transform, (50, 250, 50, 250))
        first = box_in_map(ds.transform, (100, 200, 100, 200))
    to_lonlat = Transformer.from_crs("EPSG:28992", "EPSG:4326", always_xy=True)
    in_lonlat = shapely.transform(
        around_first.segmentize(5), lambda xy: np.column_stack(to_lonlat.transform(*xy.T))
    )
    options = SegmentOptions(tile=128, overlap=32, device="cpu",
                             aoi=AOI(in_lonlat, "EPSG:4326"))  # fmt: skip
    result = segment_raster(raster, ["box"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                            options=options)  # fmt: skip
    (shape,), _ = read_features(tmp_path / "out.gpkg")
    assert shapely.hausdorff_distance(shape, first) < 0.26
    col, row, width, height = result.window
    assert abs(col - 50) <= 2 and abs(row - 50) <= 2 and width < 210 and height < 210


def test_cancel_leaves_no_output_and_no_temporary_files(side: Side, tmp_path: Path) -> None:
    raster = painted(side.rd_new, tmp_path, [side.long_box])
    cancel = threading.Event()
    model = RecordingSegmenter()

    def progress(done: int, total: int, message: str) -> None:
        cancel.set()  # ask to stop as soon as the first batch is done

    with pytest.raises(Cancelled):
        segment_raster(raster, ["x"], tmp_path / "out.gpkg", model=model, options=OPTIONS,
                       progress=progress, cancel=cancel)  # fmt: skip
    assert len(model.batches) == 1  # stopped between batches
    assert sorted(os.listdir(tmp_path)) == ["painted.tif"]


def test_success_leaves_only_the_output(side: Side, tmp_path: Path) -> None:
    raster = painted(side.utm, tmp_path, [(20, 100, 150, 300)])
    segment_raster(raster, ["x"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                   options=OPTIONS)  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["out.gpkg", "painted.tif"]


def test_probabilities_are_a_tiled_compressed_float_geotiff(side: Side, tmp_path: Path) -> None:
    raster = painted(side.utm, tmp_path, [(20, 100, 150, 300)])
    kept = tmp_path / "p.tif"
    options = SegmentOptions(tile=128, overlap=32, device="cpu", probabilities_path=str(kept))
    segment_raster(raster, ["a", "b"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                   options=options)  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["out.gpkg", "p.tif", "painted.tif"]
    with rasterio.open(kept) as probs, rasterio.open(raster) as src:
        assert probs.count == 2 and probs.dtypes == ("float32", "float32")
        assert probs.profile["tiled"] and probs.compression.value == "DEFLATE"
        assert probs.crs == src.crs and probs.transform == src.transform
        values = probs.read(1)
    assert values[20:100, 150:300].min() > 0.99 and values.max() <= 1.0
    assert np.median(values) < 0.01  # the dimmed rest is not the target


def test_bad_requests_fail_before_the_model_runs(side: Side, tmp_path: Path) -> None:
    raster = painted(side.utm, tmp_path, [(20, 100, 150, 300)])
    existing = tmp_path / "out.gpkg"
    existing.write_bytes(b"keep me")
    model = RecordingSegmenter()
    with pytest.raises(PromptError):
        segment_raster(raster, ["  "], tmp_path / "new.gpkg", model=model, options=OPTIONS)
    with pytest.raises(OutputError):
        segment_raster(raster, ["x"], existing, model=model, options=OPTIONS)
    with pytest.raises(OptionError, match="multiple of the model stride"):
        segment_raster(raster, ["x"], tmp_path / "new.gpkg", model=model,
                       options=SegmentOptions(tile=100, device="cpu"))  # fmt: skip
    with pytest.raises(OptionError, match="threshold"):
        segment_raster(raster, ["x"], tmp_path / "new.gpkg", model=model,
                       options=SegmentOptions(threshold=1.5))  # fmt: skip
    assert model.encoded == [] and model.batches == []
    assert existing.read_bytes() == b"keep me"
    assert sorted(os.listdir(tmp_path)) == ["out.gpkg", "painted.tif"]
    result = segment_raster(
        raster, ["x"], existing, model=model,
        options=SegmentOptions(tile=128, device="cpu", overwrite=True),
    )  # fmt: skip
    assert result.n_features == 1 and existing.read_bytes() != b"keep me"


def test_long_prompt_is_truncated_with_a_warning(
    side: Side, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raster = painted(side.utm, tmp_path, [(20, 100, 150, 300)])
    prompt = " ".join(["word"] * 25)
    with caplog.at_level(logging.WARNING):
        result = segment_raster(raster, [prompt], tmp_path / "o.gpkg",
                                model=RecordingSegmenter(), options=OPTIONS)  # fmt: skip
    assert len(result.warnings) == 1 and "27 tokens" in result.warnings[0]
    assert any("first 20" in record.getMessage() for record in caplog.records)


def test_unreadable_block_is_a_raster_error_and_leaves_nothing(side: Side, tmp_path: Path) -> None:
    raster = painted(side.rd_new, tmp_path, [side.long_box])
    size = raster.stat().st_size
    with open(raster, "r+b") as handle:  # damage the pixel data, keep the header
        handle.seek(size // 2)
        handle.write(os.urandom(size // 4))
    with pytest.raises(RasterReadError, match="cannot read"):
        segment_raster(raster, ["x"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                       options=OPTIONS)  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["painted.tif"]


def test_device_choice() -> None:
    device, reason = choose_device("cpu")
    assert device.type == "cpu" and reason == "requested cpu"
    auto, reason = choose_device("auto")
    assert reason.startswith("auto")
    if torch.cuda.is_available():
        assert auto.type == "cuda" and choose_device("cuda")[0].type == "cuda"
    else:
        with pytest.raises(DeviceError, match="CUDA is not available"):
            choose_device("cuda:1")
    with pytest.raises(DeviceError, match="unknown device"):
        choose_device("tpu")
