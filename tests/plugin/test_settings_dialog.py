"""Settings shows what the engine runs on (device) and the active model, from a real engine."""

from __future__ import annotations

from pathlib import Path

from .conftest import TEST_MODEL, EngineProcess


def test_settings_show_device_and_active_model(
    plugin, engine: EngineProcess, settings_for, qtbot, tmp_path: Path
) -> None:
    from saymap.settings import load_settings

    settings_for(data_dir=str(engine.data_dir))
    plugin.open_settings()
    dialog = plugin.settings_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.connect_button.click()
    qtbot.waitUntil(lambda: dialog.health is not None, timeout=60_000)
    assert dialog.device_label.text() == dialog.health.device.describe()
    assert dialog.device_label.text().startswith(("CPU", "CUDA", "MPS"))
    assert dialog.model_combo.currentText() == TEST_MODEL
    # what is typed is saved on OK
    dialog.output_edit.setFilePath(str(tmp_path))
    dialog.tile_spin.setValue(256)
    dialog.accept()
    saved = load_settings()
    assert saved.output_dir == str(tmp_path) and saved.tile == 256
