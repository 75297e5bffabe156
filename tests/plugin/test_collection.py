"""Several rasters from QGIS as ONE engine job (issue 19): Processing's Rasters parameter and
the toolbar's "all visible rasters", against a real engine, in real QGIS (headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import Qt

from .conftest import TEST_MODEL, EngineProcess
from .test_toolbar_run import RUN_TIMEOUT_MS, add_raster

# A threshold the random-weight test model passes almost everywhere, so each raster gives
# polygons and their `source` can be checked; what the model finds is not under test.
LOW_THRESHOLD = 0.02


def write_rgb(path: Path, west: float, seed: int, size: int = 192) -> Path:
    """An 8-bit RGB GeoTIFF on UTM 33N at 0.5 m, its upper-left corner at (west, 5 000 000)."""
    data = np.random.default_rng(seed).integers(40, 200, (3, size, size), dtype=np.uint8)
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 3, gdal.GDT_Byte)
    dataset.SetGeoTransform((west, 0.5, 0.0, 5_000_000.0, 0.0, -0.5))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    dataset.SetProjection(srs.ExportToWkt())
    for band in range(3):
        dataset.GetRasterBand(band + 1).WriteArray(data[band])
    dataset.FlushCache()
    dataset = None
    return path


@pytest.fixture
def three_rasters(tmp_path: Path) -> list[Path]:
    """Three rasters far apart (each its own group, so each gives its own polygons)."""
    folder = tmp_path / "tiles"
    folder.mkdir()
    return [write_rgb(folder / f"tile_{i}.tif", 500_000.0 + 1000.0 * i, i) for i in range(3)]


@pytest.fixture(scope="module")
def processing_ready():
    from processing.core.Processing import Processing

    Processing.initialize()
    import processing

    return processing


def _jobs(engine: EngineProcess) -> list:
    from saymap.engine_client import EngineClient, read_port_file

    return EngineClient(read_port_file(engine.data_dir)).jobs()


def _sources(layers: list[QgsVectorLayer]) -> set[str]:
    return {str(feature["source"]) for layer in layers for feature in layer.getFeatures()}


def test_processing_sends_several_rasters_as_one_job(
    processing_ready, plugin, engine: EngineProcess, settings_for, three_rasters, tmp_path
) -> None:
    settings_for(data_dir=str(engine.data_dir))
    project = QgsProject.instance()
    two = [str(p) for p in three_rasters[:2]]
    output = tmp_path / "two.gpkg"
    before = len(_jobs(engine))

    result = processing_ready.runAndLoadResults(
        "saymap:segmentbytext",
        {"INPUTS": two, "PROMPTS": "car", "THRESHOLD": LOW_THRESHOLD, "GSD": "native",
         "OUTPUT": str(output)},
    )  # fmt: skip

    jobs = _jobs(engine)
    assert len(jobs) == before + 1  # one engine job for both rasters
    assert jobs[0].request["rasters"] == two and jobs[0].request["raster"] is None
    assert jobs[0].result["layers"] == {"car": "saymap"}
    assert Path(result["OUTPUT"]) == output and output.is_file()
    added = [layer for layer in project.mapLayers().values() if isinstance(layer, QgsVectorLayer)]
    assert len(added) == 1  # one prompt: one layer, as for one raster
    assert added[0].name() == f"car · tile_0, tile_1 · {TEST_MODEL}"
    assert result["FEATURES"] == added[0].featureCount()
    assert _sources(added) == set(two)  # polygons from both rasters


def test_toolbar_all_visible_rasters_sends_only_the_visible_ones(
    plugin, engine: EngineProcess, settings_for, three_rasters, tmp_path, qtbot
) -> None:
    project = QgsProject.instance()
    settings_for(
        data_dir=str(engine.data_dir), output_dir=str(tmp_path / "out"), threshold=LOW_THRESHOLD
    )
    shown = [add_raster(project, path, path.stem) for path in three_rasters[:2]]
    hidden = add_raster(project, three_rasters[2], "hidden")
    project.layerTreeRoot().findLayer(hidden.id()).setItemVisibilityChecked(False)
    toolbar = plugin.toolbar
    toolbar.choose_all_visible()
    toolbar.follow_layer(hidden)  # selecting a layer in the Layers panel keeps the choice
    assert toolbar.all_visible()
    before = len(_jobs(engine))

    added: list[object] = []
    plugin.runner.layer_added.connect(added.append)
    plugin.runner.run_failed.connect(lambda message: added.append(f"failed: {message}"))
    line = toolbar.prompt_combo.lineEdit()
    qtbot.keyClicks(line, "car; building")
    qtbot.keyClick(line, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(added) >= 2 or any(isinstance(a, str) for a in added),
                    timeout=RUN_TIMEOUT_MS)  # fmt: skip
    assert not any(isinstance(a, str) for a in added), added

    jobs = _jobs(engine)
    assert len(jobs) == before + 1
    sent = jobs[0].request["rasters"]
    assert sorted(sent) == sorted(str(p) for p in three_rasters[:2])  # not the hidden one
    assert jobs[0].result["layers"] == {"car": "saymap_car", "building": "saymap_building"}
    # one layer per prompt, each the GeoPackage's layer of that prompt, in the SayMap group
    names = {layer.name() for layer in added}
    label = ", ".join(layer.name() for layer in reversed(shown))  # the Layers panel's order
    assert names == {f"car · {label} · {TEST_MODEL}", f"building · {label} · {TEST_MODEL}"}
    for layer in added:
        prompt = layer.name().split(" · ")[0]
        assert {f["prompt"] for f in layer.getFeatures()} <= {prompt}
        assert project.layerTreeRoot().findGroup("SayMap").findLayer(layer.id()) is not None
    assert _sources(added) == {str(p) for p in three_rasters[:2]}
    assert toolbar.run_action.isEnabled()


def test_request_body_names_a_raster_or_a_collection(plugins_dir) -> None:
    """One raster is sent as `raster` with no collection key (what any engine accepts);
    several as `rasters`, without `raster`."""
    from saymap.engine_client import SegmentRequest

    one = SegmentRequest("/a.tif", ("car",), "/o.gpkg").to_json()
    assert one["raster"] == "/a.tif" and "rasters" not in one and "out_crs" not in one
    many = SegmentRequest(None, ("car",), "/o.gpkg", rasters=("/a.tif", "/b.tif")).to_json()
    assert many["rasters"] == ["/a.tif", "/b.tif"] and "raster" not in many


def test_result_layers_group_the_prompts(plugins_dir) -> None:
    from saymap.engine_client import JobInfo
    from saymap.layers import rasters_label

    def job(result: dict) -> JobInfo:
        return JobInfo.from_json({"id": "j", "state": "done", "result": result})

    both = {"car": "saymap_car", "the road": "saymap_the_road"}
    assert job({"layers": both}).result_layers(("car", "the road")) == {
        "saymap_car": ("car",),
        "saymap_the_road": ("the road",),
    }
    one = {"car": "saymap", "road": "saymap"}
    assert job({"layers": one}).result_layers(("car", "road")) == {"saymap": ("car", "road")}
    # an engine from before collections says nothing: every prompt in "saymap"
    assert job({"output": "/o.gpkg"}).result_layers(("a", "b")) == {"saymap": ("a", "b")}
    assert rasters_label(["hro"]) == "hro"
    assert rasters_label(["hro", "kampala"]) == "hro, kampala"
    assert rasters_label(["a", "b", "c"]) == "a + 2 more"
