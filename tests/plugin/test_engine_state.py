"""Settings and the engine's state, driven as a user would: a new engine Python while the
engine runs is offered as a restart; Settings shows a running engine as running after a
failed run; "Set up engine" with only the plugin's zip says what it needs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qgis.core import QgsProject
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QPushButton

from .conftest import ENGINE_PYTHON, HRO, TEST_MODEL, EngineProcess, IfaceStandIn, install_model
from .test_messages import bar_button, bar_text, run_and_fail
from .test_toolbar_run import RUN_TIMEOUT_MS, add_raster, type_and_run


def python_wrapper(folder: Path) -> Path:
    """Another engine Python: a script that runs the engine venv's (what a user gets when
    they point Settings at a second environment)."""
    folder.mkdir(parents=True)
    wrapper = folder / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{ENGINE_PYTHON}" "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.slow
def test_a_new_engine_python_is_offered_as_a_restart(
    plugin, iface: IfaceStandIn, tiny_model, settings_for, real_data, tmp_path, qtbot
) -> None:
    """The engine QGIS started keeps running the old Python until restarted: Settings' OK
    says so and offers the restart; the next run uses the new Python."""
    data_dir = tmp_path / "data"
    install_model(data_dir, tiny_model)
    settings_for(data_dir=str(data_dir), engine_python=str(ENGINE_PYTHON), output_dir=str(tmp_path))
    raster = add_raster(QgsProject.instance(), real_data / HRO, "hro")
    type_and_run(qtbot, plugin, raster, "car")  # the plugin starts its engine
    old = plugin.connection.process
    old_pid = old.processId()
    assert old.program() == str(ENGINE_PYTHON)

    other = python_wrapper(tmp_path / "other-env" / "bin")
    plugin.open_settings()
    dialog = plugin.settings_dialog
    dialog.python_edit.setFilePath(str(other))
    qtbot.mouseClick(
        next(b for b in dialog.findChildren(QPushButton) if b.text().replace("&", "") == "OK"),
        Qt.MouseButton.LeftButton,
    )
    told = bar_text(iface)
    assert f"now {other}" in told and f"uses {ENGINE_PYTHON}" in told
    assert plugin.connection.process is old  # nothing restarted behind the user's back

    with qtbot.waitSignal(plugin.connection.started, timeout=RUN_TIMEOUT_MS) as started:
        qtbot.mouseClick(bar_button(iface, "Restart the engine"), Qt.MouseButton.LeftButton)
    assert started.args[0].pid != old_pid
    assert plugin.connection.process.program() == str(other)
    assert not Path(f"/proc/{old_pid}").exists() or _zombie(old_pid)
    qtbot.waitUntil(lambda: "restarted with" in bar_text(iface), timeout=10_000)
    plugin.toolbar.prompt_combo.lineEdit().clear()
    assert type_and_run(qtbot, plugin, raster, "car").crs() == raster.crs()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_settings_show_the_engine_running_after_a_failed_run(
    plugin, iface: IfaceStandIn, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    """A refused run (here: 17 prompts) leaves the engine running, and Settings says so."""
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path))
    raster = add_raster(QgsProject.instance(), real_data / HRO, "hro")
    run_and_fail(qtbot, plugin, raster, "; ".join(f"p{i}" for i in range(17)))
    assert plugin.connection.endpoint is not None

    plugin.open_settings()
    dialog = plugin.settings_dialog
    qtbot.waitUntil(lambda: dialog.health is not None, timeout=60_000)
    status = dialog.status_label.text()
    assert status.startswith("engine ") and "not connected" not in status
    assert dialog.model_combo.currentText() == TEST_MODEL

    # and when the plugin knew of no engine at all (QGIS just started), Settings asks
    plugin.connection.forget()
    dialog.reject()
    qtbot.waitUntil(lambda: plugin.settings_dialog is None, timeout=5_000)
    plugin.open_settings()
    dialog = plugin.settings_dialog
    qtbot.waitUntil(lambda: dialog.health is not None, timeout=60_000)
    assert dialog.status_label.text().startswith("engine ")


def test_set_up_engine_with_only_the_zip_says_what_it_needs(
    plugin, iface: IfaceStandIn, settings_for, tmp_path, qtbot, monkeypatch
) -> None:
    """The zip installed on a machine without the SayMap source: no package name is
    offered (none is published); the dialog says a source folder or a wheel is needed, and
    refuses a bare name, or a folder that is not the source, before running anything."""
    import saymap.setup_dialog

    monkeypatch.setattr(saymap.setup_dialog, "source_folder", lambda: None)
    settings_for(data_dir=str(tmp_path / "data"))
    menu = {a.text(): a for a in iface.menus["&SayMap"]}
    menu["Set up engine…"].trigger()
    dialog = plugin.setup_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.source_edit.text() == ""
    note = dialog.source_note.text()
    assert dialog.source_note.isVisibleTo(dialog)
    assert "not published on a package registry" in note
    assert "source folder" in note and ".whl" in note

    dialog.python_edit.setFilePath("/usr/bin/python3")
    dialog.venv_edit.setFilePath(str(tmp_path / "venv"))

    def press_start() -> str:
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        assert dialog._process is None and not (tmp_path / "venv").exists()  # nothing ran
        return dialog.status_label.text()

    assert press_start().startswith("Choose where to install the engine from.")
    qtbot.keyClicks(dialog.source_edit, "saymap")
    said = press_start()
    assert "pip would look for “saymap” on PyPI and not find it" in said
    assert "source folder" in said and "wheel" in said
    not_source = tmp_path / "downloads"
    not_source.mkdir()
    dialog.source_edit.setText(str(not_source))
    assert "is not the SayMap source folder: it has no pyproject.toml" in press_start()
    dialog.source_edit.setText(str(tmp_path / "saymap-0.1.0-py3-none-any.whl"))
    assert "There is no wheel at" in press_start()
    # with a package index in the pip options, a name is the user's call
    dialog.source_edit.setText("saymap")
    dialog.pip_args_edit.setText("--index-url https://pypi.example.org/simple")
    from saymap.engine_setup import source_problem

    assert source_problem("saymap", ("--index-url", "https://pypi.example.org/simple")) is None
    assert source_problem(os.fspath(Path(__file__).resolve().parents[2])) is None
