"""The toolbar's fit and finish: pickers wide enough to read, the raster picker following the
Layers panel, Help and About in the menu (with the active model's card), a Processing help
URL, and a warning before running on a raster far outside the model's resolution range."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QObject, Qt, QUrl, pyqtSlot
from qgis.PyQt.QtGui import QDesktopServices

from .conftest import HRO, KAMPALA, TEST_CLASSES, TEST_MODEL, EngineProcess, IfaceStandIn
from .test_messages import bar_button, bar_text
from .test_toolbar_run import RUN_TIMEOUT_MS, _last_job, add_raster

LANDSAT = "landsat_rgb_byte/RGB.byte.tif"  # 300 m per pixel, EPSG:32618


def test_pickers_are_readable_and_the_raster_follows_the_layers_panel(
    plugin, iface: IfaceStandIn, real_data, qtbot
) -> None:
    from saymap.area import AreaChoice

    project = QgsProject.instance()
    iface.window.resize(1800, 700)  # the whole toolbar on one row, as on a wide screen
    iface.window.show()
    hro = add_raster(project, real_data / HRO, "201404_13SED190110_201404_0x1500m_CL_1")
    kampala = add_raster(project, real_data / KAMPALA, "kampala_west_rgb")
    toolbar = plugin.toolbar
    metrics = toolbar.raster_combo.fontMetrics()
    assert toolbar.raster_combo.width() >= metrics.horizontalAdvance("kampala_west_rgb" + "xxxx")
    toolbar.set_area(AreaChoice.SELECTED_FEATURES)
    qtbot.waitUntil(lambda: toolbar.polygon_combo.isVisible(), timeout=5_000)
    assert toolbar.polygon_combo.width() >= metrics.horizontalAdvance("buildings_2024" + "xx")

    iface.setActiveLayer(kampala)  # the user clicks it in the Layers panel
    assert toolbar.raster_combo.currentLayer() is kampala
    iface.setActiveLayer(hro)
    assert toolbar.raster_combo.currentLayer() is hro
    labels = QgsVectorLayer(
        str(real_data / "kampala" / "kampala_west_buildings.geojson"), "buildings", "ogr"
    )
    project.addMapLayer(labels)
    iface.setActiveLayer(labels)  # a vector layer keeps the raster chosen
    assert toolbar.raster_combo.currentLayer() is hro
    assert all(not a.icon().isNull() for a in toolbar.actions() if a.text())


class UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    @pyqtSlot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url.toString())


def test_help_and_about_from_the_menu(
    plugin, iface: IfaceStandIn, engine: EngineProcess, settings_for, qtbot
) -> None:
    from saymap.paths import HELP_PATH, plugin_metadata

    settings_for(data_dir=str(engine.data_dir))
    menu = {a.text(): a for a in iface.menus["&SayMap"]}
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        menu["SayMap help"].trigger()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert catcher.urls == [HELP_PATH.as_uri()] and HELP_PATH.is_file()

    menu["About SayMap…"].trigger()
    about = plugin.about_dialog
    assert about is not None and about.isVisible()
    assert about.version == plugin_metadata()["version"] != "unknown"
    qtbot.waitUntil(lambda: about.models is not None, timeout=60_000)
    card = about.card_text()
    assert TEST_MODEL in card and all(name in card for name in TEST_CLASSES)

    algorithm = QgsApplication.processingRegistry().algorithmById("saymap:segmentbytext")
    assert algorithm.helpUrl() == HELP_PATH.as_uri()


@pytest.fixture
def ranged_model(engine: EngineProcess):
    """The session engine's test model with a card that states its resolution range, made
    active for one test (the default model's card states gsd_m 0.3, range 0.03–0.6 m)."""
    from saymap.engine_client import EngineClient, read_port_file

    source = engine.data_dir / "models" / TEST_MODEL
    target = engine.data_dir / "models" / "plugin-test-ranged"
    if not target.exists():
        shutil.copytree(source, target)
        card = json.loads((target / "model_card.json").read_text())
        card.update(name="plugin-test-ranged", gsd_m=0.3, gsd_range_m=[0.03, 0.6])
        (target / "model_card.json").write_text(json.dumps(card))
    client = EngineClient(read_port_file(engine.data_dir))
    client.set_active_model("plugin-test-ranged")
    yield "plugin-test-ranged"
    client.set_active_model(TEST_MODEL)


def test_a_raster_far_outside_the_models_range_asks_first(
    plugin, iface: IfaceStandIn, engine: EngineProcess, ranged_model, settings_for, real_data,
    tmp_path, qtbot,
) -> None:  # fmt: skip
    from saymap.engine_client import EngineClient, read_port_file

    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path))
    landsat = add_raster(QgsProject.instance(), real_data / LANDSAT, "landsat")
    jobs_before = len(EngineClient(read_port_file(engine.data_dir)).jobs())
    toolbar = plugin.toolbar
    toolbar.raster_combo.setLayer(landsat)
    qtbot.keyClicks(toolbar.prompt_combo.lineEdit(), "building")
    with qtbot.waitSignal(plugin.runner.run_held, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(toolbar.prompt_combo.lineEdit(), Qt.Key.Key_Return)
    told = bar_text(iface)
    assert "“landsat” is 300 m per pixel, far coarser than the 0.03–0.6 m" in told
    assert len(EngineClient(read_port_file(engine.data_dir)).jobs()) == jobs_before  # not sent
    assert toolbar.run_action.isEnabled() and not plugin.runner.busy

    # "Run anyway": the engine refuses to scale it 1000x, said without its flags
    with qtbot.waitSignal(plugin.runner.run_failed, timeout=RUN_TIMEOUT_MS) as failed:
        qtbot.mouseClick(bar_button(iface, "Run anyway"), Qt.MouseButton.LeftButton)
    assert "working resolution to native" in failed.args[0] and "--" not in failed.args[0]

    # a raster inside the range runs without asking
    plugin.toolbar.prompt_combo.lineEdit().clear()
    hro = add_raster(QgsProject.instance(), real_data / HRO, "hro")
    added: list[object] = []
    plugin.runner.layer_added.connect(added.append)
    plugin.runner.run_held.connect(lambda text: added.append(f"held: {text}"))
    toolbar.raster_combo.setLayer(hro)
    qtbot.keyClicks(toolbar.prompt_combo.lineEdit(), "building")
    qtbot.keyClick(toolbar.prompt_combo.lineEdit(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(added), timeout=RUN_TIMEOUT_MS)
    assert not isinstance(added[0], str), added[0]
    assert added[0].name() == f"building · hro · {ranged_model}"
    assert Path(_last_job(engine).request["raster"]).name == Path(HRO).name


def test_unread_card_runs_without_asking(
    plugin, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    """The test model's card states no range: Landsat is sent, and the engine decides."""
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path))
    landsat = add_raster(QgsProject.instance(), real_data / LANDSAT, "landsat")
    held: list[str] = []
    plugin.runner.run_held.connect(held.append)
    added: list[object] = []
    plugin.runner.layer_added.connect(added.append)
    run_failed: list[str] = []
    plugin.runner.run_failed.connect(run_failed.append)
    plugin.toolbar.raster_combo.setLayer(landsat)
    qtbot.keyClicks(plugin.toolbar.prompt_combo.lineEdit(), "car")
    qtbot.keyClick(plugin.toolbar.prompt_combo.lineEdit(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(added or run_failed), timeout=RUN_TIMEOUT_MS)
    assert held == []


def test_enter_runs_once_and_a_chosen_completion_runs_too(plugin, iface: IfaceStandIn, qtbot):
    """An editable combo box passes one Return to its line edit twice; one Enter must make
    one run request, and Return on a completion from the popup runs that completion."""
    toolbar = plugin.toolbar
    iface.window.show()
    asked: list[object] = []
    toolbar.run_requested.connect(asked.append)
    toolbar.input_error.connect(asked.append)  # no raster chosen: the request still counts
    line = toolbar.prompt_combo.lineEdit()
    qtbot.keyClicks(line, "car")
    qtbot.keyClick(line, Qt.Key.Key_Return)
    assert len(asked) == 1
    toolbar.set_history(["cars", "car park"])
    line.clear()
    qtbot.keyClicks(line, "car")
    popup = toolbar.prompt_combo.completer().popup()
    qtbot.waitUntil(popup.isVisible, timeout=5_000)
    qtbot.keyClick(popup, Qt.Key.Key_Down)
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert len(asked) == 2 and toolbar.prompt_combo.currentText() == "cars"
