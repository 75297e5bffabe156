"""What the message bar says, driven through the toolbar against a real engine: QGIS's words
for the engine's refusals (no HTTP codes, no command-line flags), a way out for a raster with
no CRS, the engine's own sentence for a prompt it refuses, and no error on quitting after
the user closed a message with ×."""

from __future__ import annotations

import pytest
import qgis.utils
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QEvent, Qt
from qgis.PyQt.QtWidgets import QPushButton, QToolButton

from .conftest import HRO, EngineProcess, IfaceStandIn
from .test_toolbar_run import RUN_TIMEOUT_MS, add_raster, type_and_run


def bar_text(iface: IfaceStandIn) -> str:
    item = iface.bar.currentItem()
    assert item is not None, "no message on the bar"
    return item.text()


def bar_button(iface: IfaceStandIn, label_start: str) -> QPushButton:
    buttons = iface.bar.currentItem().findChildren(QPushButton)
    found = [b for b in buttons if b.text().startswith(label_start)]
    assert found, f"no “{label_start}…” button among {[b.text() for b in buttons]}"
    return found[0]


def run_and_fail(qtbot, plugin, layer: QgsRasterLayer, prompt: str) -> str:
    """Type a prompt, press Enter, wait for the run to fail; returns what the user was told."""
    toolbar = plugin.toolbar
    toolbar.raster_combo.setLayer(layer)
    line = toolbar.prompt_combo.lineEdit()
    line.clear()
    qtbot.keyClicks(line, prompt)
    with qtbot.waitSignal(plugin.runner.run_failed, timeout=RUN_TIMEOUT_MS) as failed:
        qtbot.keyClick(line, Qt.Key.Key_Return)
    return failed.args[0]


# -- item 4: quitting after the user closed the red engine message ------------------------------
def test_quit_after_closing_the_engine_message_with_x(
    plugins_dir, iface: IfaceStandIn, project, settings_for, real_data, tmp_path, qtbot
) -> None:
    """The red engine message, closed with ×, then QGIS quits: unload raises nothing (it
    used to pop the deleted item: "wrapped C/C++ object … has been deleted")."""
    settings_for(data_dir=str(tmp_path / "data"), engine_python=str(tmp_path / "no-python"))
    assert qgis.utils.loadPlugin("saymap") and qgis.utils.startPlugin("saymap")
    plugin = qgis.utils.plugins["saymap"]
    iface.window.show()
    raster = add_raster(project, real_data / HRO, "hro")
    runs: list[object] = []
    plugin.toolbar.run_requested.connect(runs.append)
    told = run_and_fail(qtbot, plugin, raster, "car")
    assert len(runs) == 1  # one Enter, one run (the combo box repeats its Return)
    assert "No SayMap engine Python" in told and bar_text(iface) == told
    close = next(b for b in iface.bar.findChildren(QToolButton) if b.toolTip() == "Close")
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    QgsApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # the bar deletes it
    assert iface.bar.currentItem() is None and plugin.board.items() == []

    # a second message left open is taken away by unload; the closed one is not touched
    plugin.show_engine_problem("still shown at quit")
    assert len(plugin.board.items()) == 1
    assert qgis.utils.unloadPlugin("saymap"), "unloading raised (see the log above)"
    assert iface.bar.currentItem() is None


# -- item 5: a raster with no CRS, said in QGIS terms, with the project's CRS offered ----------
def test_raster_without_crs_is_explained_and_the_project_crs_offered(
    plugin, iface: IfaceStandIn, engine: EngineProcess, settings_for, no_crs_raster, tmp_path,
    qtbot,
) -> None:  # fmt: skip
    from .test_toolbar_run import _last_job

    project = QgsProject.instance()
    hro_crs = QgsCoordinateReferenceSystem("EPSG:26913")
    project.setCrs(hro_crs)
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path / "out"))
    raster = add_raster(project, no_crs_raster, "scan")
    raster.setCrs(QgsCoordinateReferenceSystem())  # QGIS knows none either

    told = run_and_fail(qtbot, plugin, raster, "car")

    assert told == bar_text(iface)
    assert "“no_crs.tif” has no coordinate reference system" in told
    assert "Layer Properties ▸ Source" in told and "EPSG:26913" in told
    assert "--" not in told and "HTTP" not in told and "400" not in told
    assert plugin.connection.endpoint is not None  # a refusal leaves the engine known

    # Layer Properties… opens the layer's Source page
    qtbot.mouseClick(bar_button(iface, "Layer Properties"), Qt.MouseButton.LeftButton)
    assert iface.properties_shown == [(raster, "mOptsPage_Source")]

    # the message again, and this time the project's CRS: the run goes through with it
    run_and_fail(qtbot, plugin, raster, "car")
    added: list[object] = []
    plugin.runner.layer_added.connect(added.append)
    qtbot.mouseClick(
        bar_button(iface, "Use the project's CRS (EPSG:26913)"), Qt.MouseButton.LeftButton
    )
    qtbot.waitUntil(lambda: bool(added), timeout=RUN_TIMEOUT_MS)
    assert _last_job(engine).request["assume_crs"] == "EPSG:26913"
    assert added[0].crs() == hro_crs


# -- issue 18: the engine's prompt rules, in the engine's words ---------------------------------
@pytest.mark.parametrize(
    "prompt", ["x" * 301, "; ".join(f"thing {i}" for i in range(17))], ids=["301 chars", "17"]
)
def test_a_prompt_the_engine_refuses_is_shown_in_its_words(
    plugin, iface: IfaceStandIn, engine: EngineProcess, settings_for, real_data, tmp_path,
    qtbot, prompt,
) -> None:  # fmt: skip
    """The plugin keeps no prompt rules of its own: it sends what was typed and shows the
    engine's refusal as the engine words it, without the HTTP code."""
    from saymap.engine_client import EngineClient, SegmentRequest, read_port_file
    from saymap.errors import EngineRequestError
    from saymap.request import split_prompts

    project = QgsProject.instance()
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path))
    raster = add_raster(project, real_data / HRO, "hro")

    told = run_and_fail(qtbot, plugin, raster, prompt)

    # the same prompts sent straight to the engine: its sentence for them
    client = EngineClient(read_port_file(engine.data_dir))
    direct = SegmentRequest(str(real_data / HRO), split_prompts(prompt), str(tmp_path / "d.gpkg"))
    with pytest.raises(EngineRequestError) as refused:
        client.segment(direct)
    assert 400 <= refused.value.status < 500
    assert told == refused.value.detail == bar_text(iface)
    assert "HTTP" not in told and str(refused.value.status) not in told
    assert list(project.mapLayers()) == [raster.id()]
    # the engine is still there and the toolbar ready for the next run
    assert plugin.connection.endpoint is not None and plugin.toolbar.run_action.isEnabled()
    plugin.toolbar.prompt_combo.lineEdit().clear()
    assert type_and_run(qtbot, plugin, raster, "car").crs() == raster.crs()
