"""The tiled inference pipeline end to end on real rasters (the second layer of
test_infer_generated.py): batching, prompts, progress, cancelling, masks, AOI and outputs.

These are real pipeline runs, not mocks: real GeoTIFFs on disk, the real reader thread,
blending, probability GeoTIFF and GeoPackage. The segmenter is the deterministic
`BrightnessSegmenter` (an nn.Module whose logits are high exactly where pixels are bright),
so every expected answer is known in advance.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer

from saymap.engine.aoi import AOI
from saymap.engine.errors import Cancelled, OptionError, OutputError, PromptError, RasterReadError
from saymap.engine.infer import SegmentOptions, segment_raster
from tests.conftest import skip_module_without_real_data
from tests.engine.brightness import BrightnessConfig, RecordingSegmenter
from tests.engine.painting import box_in_map, paint_copy, read_features

skip_module_without_real_data("pipeline on real rasters (test_infer_generated.py runs everywhere)")
pytestmark = pytest.mark.real_data

GORINCHEM = ("nl_gorinchem", "test_tiled.tif")
MANILA = ("oam_manila", "5b90f92da0d7280005fab355_4310.tif")
NEON = ("neon_osbs", "OSBS_029.tif")
OPTIONS = SegmentOptions(tile=128, overlap=32, batch_size=4, device="cpu")


def painted(real_data: Path, tmp_path: Path, sample: tuple[str, str], boxes: list) -> Path:
    path = tmp_path / "painted.tif"
    paint_copy(real_data.joinpath(*sample), path, boxes)
    return path


def test_prompts_encoded_once_and_tiles_batched(real_data: Path, tmp_path: Path) -> None:
    raster = painted(real_data, tmp_path, GORINCHEM, [(300, 400, 200, 700)])
    model = RecordingSegmenter()
    calls: list[tuple[int, int, str]] = []
    result = segment_raster(
        raster, ["tank", "boat"], tmp_path / "out.gpkg", model=model, options=OPTIONS,
        progress=lambda done, total, message: calls.append((done, total, message)),
    )  # fmt: skip
    assert model.encoded == [["tank"], ["boat"]]  # once per prompt, not per tile
    assert result.tiles == 121 == result.tiles_run  # (1 + ceil((1000 - 128) / 96)) ** 2
    assert all(shape[0] <= 4 and shape[1:] == (3, 128, 128) for shape in model.batches)
    assert sum(shape[0] for shape in model.batches) == 2 * result.tiles  # each prompt
    assert max(shape[0] for shape in model.batches) == 4
    dones = [done for done, _, message in calls if message != "vectorising"]
    assert dones == sorted(dones) and dones[-1] == 121 and {t for _, t, _ in calls} == {121}
    _, fields = read_features(tmp_path / "out.gpkg")
    assert sorted(fields["prompt"]) == ["boat", "tank"]  # the same box for both prompts
    assert result.features_per_prompt == {"tank": 1, "boat": 1} and result.n_features == 2
    assert result.device == "cpu" and "cpu" in result.device_reason


def test_object_crossing_many_tile_borders_is_one_polygon(real_data: Path, tmp_path: Path) -> None:
    # An L-shape over a 3 x 4 block of 128 px tiles.
    raster = painted(real_data, tmp_path, GORINCHEM, [(100, 400, 100, 160), (340, 400, 100, 500)])
    segment_raster(raster, ["L"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                   options=OPTIONS)  # fmt: skip
    (shape,), _ = read_features(tmp_path / "out.gpkg")
    with rasterio.open(raster) as ds:
        expected = box_in_map(ds.transform, (100, 400, 100, 160)).union(
            box_in_map(ds.transform, (340, 400, 100, 500))
        )
    assert shape.symmetric_difference(expected).area < 1e-6


def test_nodata_pixels_are_never_segmented(real_data: Path, tmp_path: Path) -> None:
    """neon_osbs marks scattered white pixels as nodata (255): bright, so the brightness
    segmenter would find them if the mask did not hold. Only the painted box comes back."""
    raster = painted(real_data, tmp_path, NEON, [(20, 100, 150, 300)])
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


def test_black_fill_is_never_segmented_and_skips_the_model(real_data: Path, tmp_path: Path) -> None:
    """oam_manila's black triangle has no nodata flag. A segmenter that calls everything
    the target must still leave the fill out, and tiles of pure fill skip the model."""
    source = real_data.joinpath(*MANILA)
    everything = RecordingSegmenter(BrightnessConfig(tile_size=256, level=-1.0))
    result = segment_raster(
        source, ["everything"], tmp_path / "out.gpkg", model=everything,
        options=SegmentOptions(tile=256, overlap=32, device="cpu", max_hole_px=0),
    )  # fmt: skip
    assert result.tiles_run < result.tiles
    geometries, _ = read_features(tmp_path / "out.gpkg")
    with rasterio.open(source) as ds:
        fill = np.all(ds.read() == 0, axis=0)
        pixel_area = abs(ds.transform.a * ds.transform.e)
    found = shapely.union_all(geometries)
    valid_area = (~fill).sum() * pixel_area
    assert found.area == pytest.approx(valid_area, rel=0.002)
    with rasterio.open(source) as ds:
        assert not found.contains(shapely.Point(ds.transform * (5, 5)))


def test_polygon_aoi_in_lonlat_keeps_only_what_is_inside(real_data: Path, tmp_path: Path) -> None:
    raster = painted(real_data, tmp_path, GORINCHEM, [(100, 200, 100, 200), (600, 700, 600, 700)])
    with rasterio.open(raster) as ds:
        around_first = box_in_map(ds.transform, (50, 250, 50, 250))
    to_lonlat = Transformer.from_crs("EPSG:28992", "EPSG:4326", always_xy=True)
    in_lonlat = shapely.transform(
        around_first.segmentize(5), lambda xy: np.column_stack(to_lonlat.transform(*xy.T))
    )
    options = SegmentOptions(tile=128, overlap=32, device="cpu",
                             aoi=AOI(in_lonlat, "EPSG:4326"))  # fmt: skip
    result = segment_raster(raster, ["box"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                            options=options)  # fmt: skip
    (shape,), _ = read_features(tmp_path / "out.gpkg")
    with rasterio.open(raster) as ds:
        assert (
            shapely.hausdorff_distance(shape, box_in_map(ds.transform, (100, 200, 100, 200))) < 0.26
        )
    col, row, width, height = result.window
    assert abs(col - 50) <= 2 and abs(row - 50) <= 2 and width < 210 and height < 210


def test_cancel_leaves_no_output_and_no_temporary_files(real_data: Path, tmp_path: Path) -> None:
    raster = painted(real_data, tmp_path, GORINCHEM, [(300, 400, 200, 700)])
    cancel = threading.Event()
    model = RecordingSegmenter()

    def progress(done: int, total: int, message: str) -> None:
        cancel.set()  # ask to stop as soon as the first batch is done

    with pytest.raises(Cancelled):
        segment_raster(raster, ["x"], tmp_path / "out.gpkg", model=model, options=OPTIONS,
                       progress=progress, cancel=cancel)  # fmt: skip
    assert len(model.batches) == 1  # stopped between batches
    assert sorted(os.listdir(tmp_path)) == ["painted.tif"]


def test_success_leaves_only_the_output(real_data: Path, tmp_path: Path) -> None:
    raster = painted(real_data, tmp_path, NEON, [(20, 100, 150, 300)])
    segment_raster(raster, ["x"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                   options=OPTIONS)  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["out.gpkg", "painted.tif"]


def test_probabilities_are_a_tiled_compressed_float_geotiff(
    real_data: Path, tmp_path: Path
) -> None:
    raster = painted(real_data, tmp_path, NEON, [(20, 100, 150, 300)])
    kept = tmp_path / "p.tif"
    options = SegmentOptions(tile=128, overlap=32, device="cpu", probabilities_path=str(kept))
    segment_raster(raster, ["a", "b"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                   options=options)  # fmt: skip
    with rasterio.open(kept) as probs, rasterio.open(raster) as src:
        assert probs.count == 2 and probs.dtypes == ("float32", "float32")
        assert probs.profile["tiled"] and probs.compression.value == "DEFLATE"
        assert probs.crs == src.crs and probs.transform == src.transform
        values = probs.read(1)
    assert values[20:100, 150:300].min() > 0.99 and values.max() <= 1.0


def test_bad_requests_fail_before_the_model_runs(real_data: Path, tmp_path: Path) -> None:
    raster = painted(real_data, tmp_path, NEON, [(20, 100, 150, 300)])
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
    real_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raster = painted(real_data, tmp_path, NEON, [(20, 100, 150, 300)])
    prompt = " ".join(["word"] * 25)
    with caplog.at_level(logging.WARNING):
        result = segment_raster(raster, [prompt], tmp_path / "o.gpkg",
                                model=RecordingSegmenter(), options=OPTIONS)  # fmt: skip
    assert len(result.warnings) == 1 and "27 tokens" in result.warnings[0]
    assert any("first 20" in record.getMessage() for record in caplog.records)


def test_unreadable_block_is_a_raster_error_and_leaves_nothing(
    real_data: Path, tmp_path: Path
) -> None:
    raster = painted(real_data, tmp_path, GORINCHEM, [(300, 400, 200, 700)])
    size = raster.stat().st_size
    with open(raster, "r+b") as handle:  # damage the pixel data, keep the header
        handle.seek(size // 2)
        handle.write(os.urandom(size // 4))
    with pytest.raises(RasterReadError, match="cannot read"):
        segment_raster(raster, ["x"], tmp_path / "out.gpkg", model=RecordingSegmenter(),
                       options=OPTIONS)  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["painted.tif"]
