"""Vectorisation: objects cut by window borders come out whole, clean-up rules, true area,
and the GeoPackage writer (atomic, never clobbering, valid when empty). Real GeoTIFFs and
GeoPackages on disk throughout."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from shapely.geometry import Point, Polygon, box

from saymap.engine.errors import Cancelled, OutputError
from saymap.engine.output import FIELDS, GeoPackageWriter, check_output_path
from saymap.engine.vectorize import (
    Component,
    VectorizeOptions,
    area_m2,
    clean,
    is_equal_area,
    iter_components,
)
from tests.engine.painting import equal_area_m2

UTM = CRS.from_epsg(32633)


def write_probabilities(path: Path, probabilities: np.ndarray) -> Path:
    height, width = probabilities.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
        crs="EPSG:32633", transform=Affine(0.5, 0, 500000, 0, -0.5, 4000000),
        tiled=True, blockxsize=256, blockysize=256,
    ) as dst:  # fmt: skip
        dst.write(probabilities.astype(np.float32), 1)
    return path


def components(path: Path, window: int, threshold: float = 0.5) -> list[Component]:
    with rasterio.open(path) as ds:
        return list(iter_components(ds, 1, threshold, window))


def smooth_noise(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Blobby probabilities: random noise box-blurred (separable), scaled to [0, 1]."""
    rng = np.random.default_rng(seed)
    noise = rng.random(shape)
    kernel = np.ones(9) / 9
    for axis in (0, 1):
        noise = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, noise)
    return (noise - noise.min()) / (noise.max() - noise.min())


def test_windows_do_not_change_the_objects(tmp_path: Path) -> None:
    """Many small windows must give exactly the objects one big window gives."""
    path = write_probabilities(tmp_path / "p.tif", smooth_noise((300, 340), seed=3))
    whole = components(path, window=1024, threshold=0.7)
    cut = components(path, window=37, threshold=0.7)
    assert len(whole) > 100  # a real test: many objects, many cut by window borders
    assert len(cut) == len(whole)
    assert sum(c.pixels for c in cut) == sum(c.pixels for c in whole)
    assert sum(c.probability_sum for c in cut) == pytest.approx(
        sum(c.probability_sum for c in whole)
    )
    key = lambda c: (round(c.geometry.bounds[1]), round(c.geometry.bounds[0]), c.pixels)  # noqa: E731
    for a, b in zip(sorted(whole, key=key), sorted(cut, key=key), strict=True):
        assert a.pixels == b.pixels
        assert a.geometry.symmetric_difference(b.geometry).area == 0


def test_object_across_many_windows_is_one_polygon_with_its_hole(tmp_path: Path) -> None:
    probabilities = np.zeros((200, 200), np.float32)
    probabilities[20:180, 20:180] = 0.9  # a square ring spanning 4 x 4 windows of 50 px
    probabilities[60:140, 60:140] = 0.0
    path = write_probabilities(tmp_path / "p.tif", probabilities)
    (ring,) = components(path, window=50)
    assert ring.geometry.geom_type == "Polygon"
    assert len(ring.geometry.interiors) == 1
    assert ring.geometry.area == 160 * 160 - 80 * 80 == ring.pixels
    assert ring.score == pytest.approx(0.9)


def test_corner_touch_is_two_objects_in_and_across_windows(tmp_path: Path) -> None:
    """4-connectivity everywhere: two squares meeting at a corner stay two objects, whether
    the corner is inside a window or on a window border."""
    probabilities = np.zeros((100, 100), np.float32)
    probabilities[30:50, 30:50] = 1.0
    probabilities[50:70, 50:70] = 1.0
    path = write_probabilities(tmp_path / "p.tif", probabilities)
    assert len(components(path, window=1024)) == 2
    assert len(components(path, window=50)) == 2


def test_cancel_stops_vectorising(tmp_path: Path) -> None:
    path = write_probabilities(tmp_path / "p.tif", smooth_noise((100, 100), seed=1))
    cancel = threading.Event()
    cancel.set()
    with rasterio.open(path) as ds, pytest.raises(Cancelled):
        list(iter_components(ds, 1, 0.5, 32, cancel))


def test_clean_fills_small_holes_drops_small_objects_and_simplifies() -> None:
    ring = Polygon(
        [(0, 0), (40, 0), (40, 40), (0, 40)],
        [[(5, 5), (7, 5), (7, 7), (5, 7)], [(10, 10), (30, 10), (30, 30), (10, 30)]],
    )
    (cleaned,) = clean(Component(ring, 1.0, 1), VectorizeOptions(max_hole_px=64))
    assert len(cleaned.interiors) == 1  # the 4 px hole is filled, the 400 px one kept
    assert cleaned.area == 40 * 40 - 400

    assert clean(Component(box(0, 0, 3, 3), 1.0, 9), VectorizeOptions(min_area_px=16)) == []

    # A rasterised disk: a staircase of many vertices becomes a polygon of few, still
    # within about a pixel of the original.
    disk = shapely.union_all(
        [box(x, y, x + 1, y + 1) for x in range(-30, 30) for y in range(-30, 30)
         if (x + 0.5) ** 2 + (y + 0.5) ** 2 <= 900]
    )  # fmt: skip
    (simple,) = clean(Component(disk, 1.0, 1), VectorizeOptions(simplify_px=1.0))
    assert len(simple.exterior.coords) < len(disk.exterior.coords) / 3
    assert shapely.hausdorff_distance(simple, disk) <= 1.0 + 1e-9


def test_equal_area_crs_is_recognised() -> None:
    custom_albers = (
        'PROJCS["unnamed",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
        '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
        'PROJECTION["Albers_Conic_Equal_Area"],PARAMETER["latitude_of_center",23],'
        'PARAMETER["longitude_of_center",-96],PARAMETER["standard_parallel_1",29.5],'
        'PARAMETER["standard_parallel_2",45.5],PARAMETER["false_easting",0],'
        'PARAMETER["false_northing",0],UNIT["metre",1]]'
    )
    assert is_equal_area(CRS.from_wkt(custom_albers))
    assert is_equal_area(CRS.from_epsg(3035))  # LAEA Europe
    for epsg in (3857, 3395, 4326, 32633, 28992):
        assert not is_equal_area(CRS.from_epsg(epsg))


@pytest.mark.parametrize("epsg", [3857, 3395, 4326, 32633, 28992, 2056])
def test_area_m2_is_true_area_in_every_crs(epsg: int) -> None:
    """A 100 m square with a 20 m hole, placed in each CRS: area_m2 matches an equal-area
    oracle (LAEA on the ellipsoid) within 0.1 %, where planar area may be far off."""
    crs = CRS.from_epsg(epsg)
    west, south, east, north = crs.area_of_use.bounds
    lon, lat = (west + east) / 2, min(max((south + north) / 2, -60), 60)
    to_crs = CRS.from_epsg(4326)
    from pyproj import Transformer

    x, y = Transformer.from_crs(to_crs, crs, always_xy=True).transform(lon, lat)
    side = 100.0 if crs.is_projected else 0.001
    square = Polygon(
        box(x, y, x + side, y + side).exterior.coords,
        [box(x + side * 0.4, y + side * 0.4, x + side * 0.6, y + side * 0.6).exterior.coords],
    )
    (area,) = area_m2([square], crs.to_wkt())
    assert area == pytest.approx(equal_area_m2(square, crs.to_wkt()), rel=1e-3)


def test_area_of_nothing() -> None:
    assert area_m2([], UTM.to_wkt()).shape == (0,)


def _fields(count: int, prompt: str = "tank") -> dict[str, list]:
    return {
        "prompt": [prompt] * count,
        "score": [0.9] * count,
        "area_m2": [1.0] * count,
        "model": ["m"] * count,
        "run_id": ["r"] * count,
        "created_at": ["2025-01-01T00:00:00Z"] * count,
        "source": ["/x.tif"] * count,
    }


def test_geopackage_written_in_batches_then_moved_into_place(tmp_path: Path) -> None:
    target = tmp_path / "out.gpkg"
    with GeoPackageWriter(target, UTM.to_wkt()) as writer:
        writer.write([box(0, 0, 1, 1), box(2, 2, 3, 3)], _fields(2))
        assert not target.exists()  # nothing at the destination until commit
        writer.write([Point(5, 5).buffer(1)], _fields(1))
        assert writer.commit() == 3
    info = pyogrio.read_info(target, layer="saymap")
    assert info["features"] == 3
    assert info["geometry_type"] == "Polygon"
    assert list(info["fields"]) == list(FIELDS)
    assert CRS.from_user_input(info["crs"]) == UTM
    assert sorted(os.listdir(tmp_path)) == ["out.gpkg"]


def test_empty_result_is_a_valid_geopackage_with_the_fields(tmp_path: Path) -> None:
    target = tmp_path / "empty.gpkg"
    with GeoPackageWriter(target, UTM.to_wkt()) as writer:
        assert writer.commit() == 0
    info = pyogrio.read_info(target, layer="saymap")
    assert info["features"] == 0
    assert list(info["fields"]) == list(FIELDS)
    assert info["geometry_type"] == "Polygon"


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.gpkg"
    target.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        GeoPackageWriter(target, UTM.to_wkt())
    assert target.read_bytes() == b"precious"
    with GeoPackageWriter(target, UTM.to_wkt(), overwrite=True) as writer:
        writer.write([box(0, 0, 1, 1)], _fields(1))
        writer.commit()
    assert pyogrio.read_info(target, layer="saymap")["features"] == 1


def test_output_that_appears_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    target = tmp_path / "out.gpkg"
    with GeoPackageWriter(target, UTM.to_wkt()) as writer:
        writer.write([box(0, 0, 1, 1)], _fields(1))
        target.write_bytes(b"someone else's")
        with pytest.raises(OutputError, match="appeared"):
            writer.commit()
    assert target.read_bytes() == b"someone else's"
    assert sorted(os.listdir(tmp_path)) == ["out.gpkg"]  # the temporary file is gone


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.gpkg"
    with pytest.raises(ValueError), GeoPackageWriter(target, UTM.to_wkt()) as writer:
        writer.write([box(0, 0, 1, 1)], _fields(1))
        writer.write([box(0, 0, 1, 1)], {"prompt": ["x"]})  # fields missing
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nowhere/out.gpkg", "folder does not exist"),
        ("out.shp", "GeoPackage"),
        ("folder.gpkg", "is a folder"),
    ],
)
def test_bad_output_paths(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "folder.gpkg").mkdir()
    with pytest.raises(OutputError, match=message):
        check_output_path(tmp_path / name)


def test_one_layer_per_prompt_each_present_even_when_empty(tmp_path: Path) -> None:
    """Several prompts: a layer each (saymap_<slug>, unique), all in one atomic file; one
    prompt keeps the layer every existing user has, "saymap"."""
    from saymap.engine.output import layer_names

    assert layer_names(["storage tank"]) == {"storage tank": "saymap"}
    names = layer_names(["Storage tank", "storage-tank!", "roads"])
    assert names == {"Storage tank": "saymap_storage_tank",
                     "storage-tank!": "saymap_storage_tank_2", "roads": "saymap_roads"}  # fmt: skip
    target = tmp_path / "layers.gpkg"
    with GeoPackageWriter(target, UTM.to_wkt(), layers=list(names.values())) as writer:
        writer.write([box(0, 0, 1, 1), box(2, 2, 3, 3)], _fields(2), "saymap_roads")
        writer.write([box(0, 0, 1, 1)], _fields(1), "saymap_storage_tank")
        with pytest.raises(ValueError, match="not one of"):
            writer.write([box(0, 0, 1, 1)], _fields(1), "saymap")
        assert writer.commit() == 3
    counts = {row[0]: pyogrio.read_info(target, layer=row[0])["features"]
              for row in pyogrio.list_layers(target)}  # fmt: skip
    assert counts == {"saymap_roads": 2, "saymap_storage_tank": 1, "saymap_storage_tank_2": 0}
    assert sorted(os.listdir(tmp_path)) == ["layers.gpkg"]


def test_a_writer_can_stage_its_file_in_a_job_folder(tmp_path: Path) -> None:
    """The collection merge stages the GeoPackage in its job folder, so an engine killed
    mid-merge leaves nothing beside the output (the job folder is the job's to clean)."""
    work = tmp_path / "out.gpkg.saymap-job"
    work.mkdir()
    target = tmp_path / "out.gpkg"
    with GeoPackageWriter(target, UTM.to_wkt(), temp_dir=work) as writer:
        writer.write([box(0, 0, 1, 1)], _fields(1))
        assert sorted(os.listdir(tmp_path)) == ["out.gpkg.saymap-job"]
        assert [p.suffix for p in work.iterdir()] == [".gpkg"]
        assert writer.commit() == 1
    assert sorted(os.listdir(tmp_path)) == ["out.gpkg", "out.gpkg.saymap-job"]
    assert list(work.iterdir()) == []
    assert pyogrio.read_info(target, layer="saymap")["features"] == 1
