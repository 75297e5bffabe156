"""The engine set-up dialog, driven from the message bar the plugin shows when no engine
environment exists, makes a working engine environment from this source folder (a real venv,
real pip installs: about two minutes here), and the plugin then runs a prompt with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsProject
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QPushButton

from .conftest import HRO, ROOT, IfaceStandIn, install_model
from .test_toolbar_run import add_raster, type_and_run

SETUP_TIMEOUT_MS = 20 * 60 * 1000


@pytest.mark.slow
def test_setup_dialog_makes_an_engine_the_plugin_then_uses(
    plugin, iface: IfaceStandIn, tiny_model: Path, settings_for, real_data, tmp_path, qtbot
) -> None:
    from saymap.paths import venv_python
    from saymap.settings import load_settings

    data_dir = tmp_path / "data"
    install_model(data_dir, tiny_model)
    settings_for(
        data_dir=str(data_dir), engine_python=str(tmp_path / "none"), output_dir=str(tmp_path)
    )
    raster = add_raster(QgsProject.instance(), real_data / HRO, "hro")

    # 1. no engine environment: a run ends in a message bar offering the set-up
    plugin.toolbar.raster_combo.setLayer(raster)
    qtbot.keyClicks(plugin.toolbar.prompt_combo.lineEdit(), "car")
    with qtbot.waitSignal(plugin.runner.run_failed, timeout=30_000):
        qtbot.keyClick(plugin.toolbar.prompt_combo.lineEdit(), Qt.Key_Return)
    buttons = iface.bar.currentItem().findChildren(QPushButton)
    setup_button = next(b for b in buttons if b.text() == "Set up engine…")
    qtbot.mouseClick(setup_button, Qt.LeftButton)
    dialog = plugin.setup_dialog
    assert dialog is not None and dialog.isVisible()

    # 2. the dialog finds a Python and the source folder, makes the venv, starts the engine
    qtbot.waitUntil(lambda: dialog.python_edit.filePath() != "", timeout=60_000)
    assert dialog.source_edit.text() == str(ROOT)
    venv = tmp_path / "engine-venv"
    dialog.venv_edit.setFilePath(str(venv))
    with qtbot.waitSignal(dialog.engine_ready, timeout=SETUP_TIMEOUT_MS) as ready:
        qtbot.mouseClick(dialog.start_button, Qt.LeftButton)
    log = dialog.log.toPlainText()
    assert "Successfully installed" in log and "--no-deps" in log
    assert dialog.health is not None
    assert dialog.health.device.describe() in dialog.status_label.text()
    assert load_settings().engine_python == str(venv_python(venv))
    assert ready.args[0].port > 0
    assert plugin.connection.process is not None
    assert plugin.connection.process.program() == str(venv_python(venv))

    # 3. nothing went into QGIS's own Python, and the plugin now runs a prompt with it
    assert not (Path("/usr/lib/python3/dist-packages") / "saymap").exists()
    plugin.toolbar.prompt_combo.lineEdit().clear()
    result = type_and_run(qtbot, plugin, raster, "car")
    assert result.crs() == raster.crs()
    assert plugin.connection.process.program() == str(venv_python(venv))
