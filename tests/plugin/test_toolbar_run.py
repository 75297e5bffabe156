"""A prompt typed into the toolbar (qtbot) runs on a real raster through a real engine and
ends as a styled layer in the project; Cancel adds no layer."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt

from .conftest import HRO, KAMPALA, TEST_CLASSES, TEST_MODEL, EngineProcess, IfaceStandIn

ENGINE_FIELDS = {"prompt", "score", "area_m2", "model", "run_id", "created_at", "source"}
RUN_TIMEOUT_MS = 180_000


def add_raster(project: QgsProject, path: Path, name: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid(), path
    project.addMapLayer(layer)
    return layer


def type_and_run(qtbot, plugin, layer: QgsRasterLayer, prompt: str) -> QgsVectorLayer:
    """Pick the raster, type the prompt, press Enter; returns the layer the run added."""
    toolbar = plugin.toolbar
    toolbar.raster_combo.setLayer(layer)
    line = toolbar.prompt_combo.lineEdit()
    qtbot.keyClicks(line, prompt)
    outcome: list[object] = []
    plugin.runner.layer_added.connect(outcome.append)
    plugin.runner.run_failed.connect(lambda message: outcome.append(f"failed: {message}"))
    qtbot.keyClick(line, Qt.Key_Return)
    qtbot.waitUntil(lambda: bool(outcome), timeout=RUN_TIMEOUT_MS)
    if isinstance(outcome[0], str):
        pytest.fail(outcome[0])
    return outcome[0]


def test_prompt_in_toolbar_adds_styled_layer(
    plugin, iface: IfaceStandIn, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    project = QgsProject.instance()
    results = tmp_path / "not" / "yet" / "there"
    settings_for(data_dir=str(engine.data_dir), output_dir=str(results))
    raster = add_raster(project, real_data / HRO, "hro")

    result = type_and_run(qtbot, plugin, raster, "car")

    assert result.id() in project.mapLayers()
    group = project.layerTreeRoot().findGroup("SayMap")
    assert group is not None and group.findLayer(result.id()) is not None
    assert result.name() == f"car · hro · {TEST_MODEL}"  # prompt · raster · model
    assert result.providerType() == "ogr"  # a GeoPackage on disk, not a memory layer
    source = Path(result.source().split("|")[0])
    assert source.parent == results and source.suffix == ".gpkg" and source.is_file()
    assert {f.name() for f in result.fields()} >= ENGINE_FIELDS
    assert result.crs() == raster.crs()
    job = plugin.runner.toolbar  # the toolbar is idle again
    assert job.run_action.isEnabled() and not job.cancel_action.isEnabled()
    prompts = {f["prompt"] for f in result.getFeatures()}
    assert prompts <= {"car"}
    assert result.renderer().symbol().color().alpha() < 255  # the shipped semi-transparent fill
    assert not result.labelsEnabled()  # score labels only when Settings asks for them
    assert iface.bar.currentItem() is not None and "car" in iface.bar.currentItem().text()
    # the prompt joined the history; the active model's classes became completions
    assert plugin.toolbar.prompt_combo.itemText(0) == "car"
    qtbot.waitUntil(lambda: set(TEST_CLASSES) <= set(plugin.toolbar.completions()), timeout=10_000)


def test_canvas_extent_area_goes_to_the_engine(
    plugin, iface: IfaceStandIn, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    project = QgsProject.instance()
    project.setFileName(str(tmp_path / "project.qgz"))  # results go beside the project
    settings_for(data_dir=str(engine.data_dir))
    raster = add_raster(project, real_data / HRO, "hro")
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    extent = raster.extent()
    side = min(extent.width(), extent.height()) / 2
    corner = QgsRectangle(
        extent.xMinimum(), extent.yMinimum(), extent.xMinimum() + side, extent.yMinimum() + side
    )
    iface.canvas.setDestinationCrs(wgs84)
    iface.canvas.setExtent(QgsCoordinateTransform(raster.crs(), wgs84, project).transform(corner))
    shown = QgsCoordinateTransform(wgs84, raster.crs(), project).transformBoundingBox(
        iface.canvas.extent()
    )
    # the canvas keeps its own aspect ratio; what matters is that it shows part of the raster
    assert shown.intersect(extent).area() < 0.8 * extent.area()
    area_index = plugin.toolbar.area_combo.findText("Map canvas extent")
    plugin.toolbar.area_combo.setCurrentIndex(area_index)

    result = type_and_run(qtbot, plugin, raster, "building")

    request = _last_job(engine).request
    assert request["aoi"]["crs"] == "EPSG:4326" and request["aoi"]["bounds"] is not None
    assert Path(request["output"]).parent == tmp_path / "saymap_results"
    assert result.crs() == raster.crs()
    if result.featureCount():
        shown.grow(1.0)  # metres: polygons follow pixel edges
        assert shown.contains(result.extent())


def test_selected_features_area(
    plugin, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    from saymap.area import AreaChoice

    project = QgsProject.instance()
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path))
    raster = add_raster(project, real_data / KAMPALA, "kampala")
    buildings = QgsVectorLayer(
        str(real_data / "kampala" / "kampala_west_buildings.geojson"), "buildings", "ogr"
    )
    assert buildings.isValid()
    project.addMapLayer(buildings)
    buildings.selectByIds(sorted(buildings.allFeatureIds())[:3])
    plugin.toolbar.set_area(AreaChoice.SELECTED_FEATURES)
    plugin.toolbar.polygon_combo.setLayer(buildings)

    result = type_and_run(qtbot, plugin, raster, "building")

    aoi = _last_job(engine).request["aoi"]
    assert aoi["wkt"].startswith(("Polygon", "MultiPolygon", "POLYGON", "MULTIPOLYGON"))
    assert result.crs() == raster.crs()
    if result.featureCount():
        selection = buildings.boundingBoxOfSelected()
        selection.grow(1.0)
        assert selection.contains(result.extent())


def test_virtual_raster_is_exported_first(
    plugin, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    """A layer that is not a plain file (here a VRT) goes to the engine as a GeoTIFF."""
    project = QgsProject.instance()
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path))
    vrt = tmp_path / "hro.vrt"
    gdal.BuildVRT(str(vrt), [str(real_data / HRO)]).FlushCache()
    raster = add_raster(project, vrt, "hro (vrt)")

    result = type_and_run(qtbot, plugin, raster, "car")

    sent = Path(_last_job(engine).request["raster"])
    assert sent.suffix == ".tif" and sent.parent == engine.data_dir / "exports"
    exported = QgsRasterLayer(str(sent), "exported")
    assert exported.width() == raster.width() and exported.height() == raster.height()
    assert exported.crs() == raster.crs()
    assert result.crs() == raster.crs()


@pytest.fixture(scope="module")
def xyz_tiles(real_data, tmp_path_factory) -> str:
    """A real XYZ tile source on disk (gdal2tiles of a real raster), as QGIS's wms provider
    reads web tiles: a layer with no file behind it and no native resolution."""
    from osgeo_utils import gdal2tiles

    warnings.simplefilter("ignore", ResourceWarning)  # gdal2tiles leaves its TMS files open
    folder = tmp_path_factory.mktemp("xyz")
    gdal2tiles.main(["gdal2tiles", "-q", "--xyz", "-z", "19-20", "-w", "none",
                     str(real_data / HRO), str(folder)])  # fmt: skip
    return f"type=xyz&url=file://{folder}/{{z}}/{{x}}/{{y}}.png&zmin=19&zmax=20"


def test_web_tiles_are_exported_for_the_canvas_extent(
    plugin, iface: IfaceStandIn, engine: EngineProcess, settings_for, xyz_tiles, real_data,
    tmp_path, qtbot,
) -> None:  # fmt: skip
    from saymap.area import AreaChoice

    project = QgsProject.instance()
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path))
    tiles = QgsRasterLayer(xyz_tiles, "tiles", "wms")
    assert tiles.isValid()
    project.addMapLayer(tiles)
    hro = QgsRasterLayer(str(real_data / HRO), "hro")
    iface.canvas.setDestinationCrs(tiles.crs())
    iface.canvas.setExtent(
        QgsCoordinateTransform(hro.crs(), tiles.crs(), project).transformBoundingBox(hro.extent())
    )
    plugin.toolbar.raster_combo.setLayer(tiles)
    line = plugin.toolbar.prompt_combo.lineEdit()

    # no native resolution and none set: the message says what to set
    qtbot.keyClicks(line, "car")
    qtbot.keyClick(line, Qt.Key_Return)
    assert "set the export resolution" in iface.bar.currentItem().text()
    assert plugin.runner.task is None and not plugin.runner.busy

    # with a resolution, the canvas extent is exported to a GeoTIFF and segmented
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path), export_resolution=0.15)
    plugin.toolbar.set_area(AreaChoice.CANVAS_EXTENT)
    line.clear()
    result = type_and_run(qtbot, plugin, tiles, "car")
    sent = Path(_last_job(engine).request["raster"])
    exported = QgsRasterLayer(str(sent), "exported")
    assert sent.parent == engine.data_dir / "exports" and exported.bandCount() == 4  # RGBA
    assert exported.crs() == tiles.crs() == result.crs()
    assert abs(exported.rasterUnitsPerPixelX() - 0.15) < 1e-9  # the chosen resolution


def test_cancel_ends_the_task_and_adds_no_layer(
    plugin, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    project = QgsProject.instance()
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path), tile=128)
    raster = add_raster(project, real_data / KAMPALA, "kampala")
    toolbar = plugin.toolbar
    toolbar.raster_combo.setLayer(raster)
    qtbot.keyClicks(toolbar.prompt_combo.lineEdit(), "storage tank")
    qtbot.keyClick(toolbar.prompt_combo.lineEdit(), Qt.Key_Return)
    # wait until the engine is really working on it, then press Cancel
    qtbot.waitUntil(
        lambda: (
            plugin.runner.task is not None
            and plugin.runner.task.job is not None
            and plugin.runner.task.job.state == "running"
        ),
        timeout=RUN_TIMEOUT_MS,
    )
    output = Path(plugin.runner.task.request.output)
    # the run shows in QGIS's task manager and in the toolbar while it works
    assert QgsApplication.taskManager().countActiveTasks() >= 1
    assert toolbar.progress_action.isVisible() and toolbar.cancel_action.isEnabled()
    with qtbot.waitSignal(plugin.runner.run_cancelled, timeout=RUN_TIMEOUT_MS):
        toolbar.cancel_action.trigger()
    assert _last_job(engine).state == "cancelled"
    assert [layer.name() for layer in project.mapLayers().values()] == ["kampala"]
    assert not output.exists()
    assert toolbar.run_action.isEnabled() and not toolbar.cancel_action.isEnabled()


@pytest.mark.parametrize(
    ("python", "expected"),
    [("missing", "No SayMap engine Python"), ("/usr/bin/python3", "lacks the SayMap engine")],
)
def test_engine_down_shows_a_message_bar(
    plugin, iface: IfaceStandIn, settings_for, real_data, tmp_path, qtbot, python, expected
) -> None:
    project = QgsProject.instance()
    python = str(tmp_path / "no-python") if python == "missing" else python
    settings_for(data_dir=str(tmp_path / "data"), engine_python=python)
    raster = add_raster(project, real_data / HRO, "hro")
    plugin.toolbar.raster_combo.setLayer(raster)
    qtbot.keyClicks(plugin.toolbar.prompt_combo.lineEdit(), "car")
    with qtbot.waitSignal(plugin.runner.run_failed, timeout=60_000) as blocker:
        qtbot.keyClick(plugin.toolbar.prompt_combo.lineEdit(), Qt.Key_Return)
    assert expected in blocker.args[0]
    item = iface.bar.currentItem()
    assert item is not None and expected in item.text()
    assert list(project.mapLayers()) == [raster.id()]
    assert plugin.toolbar.run_action.isEnabled()


def test_port_busy_is_explained(
    plugin, iface: IfaceStandIn, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    from .conftest import ENGINE_PYTHON

    project = QgsProject.instance()
    settings_for(
        data_dir=str(tmp_path / "data"), engine_python=str(ENGINE_PYTHON), port=engine.info["port"]
    )
    raster = add_raster(project, real_data / HRO, "hro")
    plugin.toolbar.raster_combo.setLayer(raster)
    qtbot.keyClicks(plugin.toolbar.prompt_combo.lineEdit(), "car")
    with qtbot.waitSignal(plugin.runner.run_failed, timeout=120_000) as blocker:
        qtbot.keyClick(plugin.toolbar.prompt_combo.lineEdit(), Qt.Key_Return)
    assert f"Port {engine.info['port']} is busy" in blocker.args[0]
    assert f"Port {engine.info['port']} is busy" in iface.bar.currentItem().text()


@pytest.mark.slow
def test_plugin_starts_its_own_engine_and_stops_it_on_unload(
    plugins_dir, project, iface: IfaceStandIn, tiny_model, settings_for, real_data, tmp_path, qtbot
) -> None:
    """No engine runs: the plugin starts one (QProcess) with the default engine Python,
    the `.venv` of the source folder recorded at package time."""
    import qgis.utils

    from .conftest import ENGINE_PYTHON, install_model

    data_dir = tmp_path / "data"
    install_model(data_dir, tiny_model)
    settings_for(data_dir=str(data_dir), output_dir=str(tmp_path))
    assert qgis.utils.loadPlugin("saymap") and qgis.utils.startPlugin("saymap")
    plugin = qgis.utils.plugins["saymap"]
    try:
        from saymap.settings import load_settings

        assert load_settings().resolved_engine_python() == ENGINE_PYTHON
        raster = add_raster(QgsProject.instance(), real_data / HRO, "hro")
        result = type_and_run(qtbot, plugin, raster, "car")
        assert result.crs() == raster.crs()
        process = plugin.connection.process
        assert process is not None and process.processId() > 0
        pid = process.processId()
        assert (data_dir / "engine.json").is_file()
    finally:
        assert qgis.utils.unloadPlugin("saymap")
    assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    assert not (data_dir / "engine.json").exists()  # the engine shut down cleanly


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _last_job(engine: EngineProcess):
    from saymap.engine_client import EngineClient, read_port_file

    return EngineClient(read_port_file(engine.data_dir)).jobs()[0]


def test_unload_during_a_run_cancels_it_quietly(
    plugins_dir, project, iface: IfaceStandIn, engine: EngineProcess, settings_for, real_data,
    tmp_path, qtbot,
) -> None:  # fmt: skip
    """Unloading mid-run cancels the engine's job; the task's late answer touches nothing."""
    import qgis.utils

    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path), tile=128)
    raster = add_raster(project, real_data / KAMPALA, "kampala")
    assert qgis.utils.loadPlugin("saymap") and qgis.utils.startPlugin("saymap")
    plugin = qgis.utils.plugins["saymap"]
    plugin.toolbar.raster_combo.setLayer(raster)
    qtbot.keyClicks(plugin.toolbar.prompt_combo.lineEdit(), "building")
    qtbot.keyClick(plugin.toolbar.prompt_combo.lineEdit(), Qt.Key_Return)
    qtbot.waitUntil(
        lambda: (
            plugin.runner.task is not None
            and plugin.runner.task.job is not None
            and plugin.runner.task.job.state == "running"
        ),
        timeout=RUN_TIMEOUT_MS,
    )
    job_id = plugin.runner.task.job.id
    assert qgis.utils.unloadPlugin("saymap")

    from saymap.engine_client import EngineClient, read_port_file

    client = EngineClient(read_port_file(engine.data_dir))
    qtbot.waitUntil(lambda: client.job(job_id).terminal, timeout=RUN_TIMEOUT_MS)
    assert client.job(job_id).state == "cancelled"
    qtbot.waitUntil(lambda: QgsApplication.taskManager().countActiveTasks() == 0, timeout=60_000)
    qtbot.wait(300)  # let the task's finished() run
    assert list(project.mapLayers()) == [raster.id()]


def test_unknown_class_name_warns_in_the_message_bar(
    plugin, iface: IfaceStandIn, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    """A bare noun the model was not trained on still runs, and the bar names the classes."""
    project = QgsProject.instance()
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path / "out"))
    raster = add_raster(project, real_data / HRO, "hro")
    type_and_run(qtbot, plugin, raster, "silo")
    text = iface.bar.currentItem().text()
    assert "'silo' is not a class" in text
    assert all(name in text for name in TEST_CLASSES)
    assert "HTTP" not in text and "--" not in text


def test_with_default_settings_results_go_to_the_engine_results_folder(
    plugin, engine: EngineProcess, settings_for, real_data, qtbot
) -> None:
    """No output folder set and no saved project: the engine's own results/ folder, which its
    refusal of paths inside its data folder must allow."""
    project = QgsProject.instance()
    settings_for(data_dir=str(engine.data_dir), output_dir="")
    raster = add_raster(project, real_data / HRO, "hro")
    result = type_and_run(qtbot, plugin, raster, "car")
    source = Path(result.source().split("|")[0])
    assert source.parent == Path(engine.data_dir) / "results" and source.is_file()
