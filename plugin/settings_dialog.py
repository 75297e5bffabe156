"""Settings: which engine Python, where results go and how they look, tiling options, and
what the engine runs on (device, active model), read from /v1/health and /v1/models in the
background. The engine's status is asked, never assumed: one that runs is shown running."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from qgis.gui import QgsFileWidget
from qgis.PyQt import sip
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .call_task import call_in_background
from .engine_client import Endpoint, EngineClient, Health, ModelList
from .engine_launcher import EngineConnection
from .settings import (
    OUTPUT_GEOPACKAGE,
    OUTPUT_TEMPORARY,
    Settings,
    load_settings,
    save_settings,
)

DEVICES = ("auto", "cpu", "cuda", "mps")
OUTPUT_MODES = {
    OUTPUT_GEOPACKAGE: "GeoPackage in the results folder",
    OUTPUT_TEMPORARY: "Temporary layer (not saved)",
}


class SettingsDialog(QDialog):
    # (old, new) engine Python, emitted on OK when it changed: the plugin offers a restart
    engine_python_changed = pyqtSignal(object, object)

    def __init__(
        self,
        connection: EngineConnection,
        open_setup: Callable[[], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("SayMap settings")
        self.connection = connection
        self._open_setup = open_setup
        self.models: ModelList | None = None
        self.health: Health | None = None
        settings = load_settings()

        self.python_edit = QgsFileWidget(self)
        self.python_edit.setFilePath(settings.engine_python)
        resolved = settings.resolved_engine_python()
        self.python_edit.lineEdit().setPlaceholderText(str(resolved) if resolved else "not found")
        self.data_dir_edit = _folder_widget(
            self, settings.data_dir, str(settings.resolved_data_dir())
        )
        self.output_edit = _folder_widget(self, settings.output_dir, "beside the project")
        self.output_mode_combo = QComboBox(self)
        for mode, label in OUTPUT_MODES.items():
            self.output_mode_combo.addItem(label, mode)
        index = self.output_mode_combo.findData(settings.output_mode)
        self.output_mode_combo.setCurrentIndex(max(index, 0))
        self.output_mode_combo.setToolTip(
            "Where each run's result goes: a GeoPackage file kept in the results folder, or a "
            "temporary layer that is gone when QGIS closes unless you save it"
        )
        self.score_labels_check = QCheckBox("Label each polygon with its score", self)
        self.score_labels_check.setChecked(settings.score_labels)
        self.port_spin = _spin(self, 0, 65535, settings.port, "any free port")
        self.device_combo = QComboBox(self)
        self.device_combo.addItems(DEVICES)
        self.device_combo.setCurrentText(settings.device if settings.device in DEVICES else "auto")
        self.tile_spin = _spin(self, 0, 8192, settings.tile, "model default")
        self.overlap_spin = _spin(self, 0, 4096, settings.overlap, "model default")
        self.threshold_spin = QDoubleSpinBox(self)
        self.threshold_spin.setRange(0.01, 0.99)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setValue(settings.threshold)
        self.resolution_spin = QDoubleSpinBox(self)
        self.resolution_spin.setRange(0.0, 1e6)
        self.resolution_spin.setDecimals(4)
        self.resolution_spin.setSpecialValueText("native")
        self.resolution_spin.setValue(settings.export_resolution)

        form = QFormLayout()
        form.addRow("Engine Python", self.python_edit)
        form.addRow("Engine data folder", self.data_dir_edit)
        form.addRow("Engine port", self.port_spin)
        form.addRow("Results", self.output_mode_combo)
        form.addRow("Results folder", self.output_edit)
        form.addRow("Result style", self.score_labels_check)
        form.addRow("Device", self.device_combo)
        form.addRow("Tile size (px)", self.tile_spin)
        form.addRow("Tile overlap (px)", self.overlap_spin)
        form.addRow("Threshold", self.threshold_spin)
        form.addRow("Export resolution (web layers)", self.resolution_spin)

        engine_box = QGroupBox("Engine", self)
        engine_form = QFormLayout(engine_box)
        self.status_label = QLabel("checking…", self)
        self.status_label.setWordWrap(True)
        self.device_label = QLabel("–", self)
        self.device_label.setObjectName("deviceLabel")
        self.model_combo = QComboBox(self)
        self.model_combo.setEnabled(False)
        engine_form.addRow("Status", self.status_label)
        engine_form.addRow("Device", self.device_label)
        engine_form.addRow("Active model", self.model_combo)
        buttons_row = QHBoxLayout()
        self.connect_button = QPushButton("Connect / start engine", self)
        self.connect_button.clicked.connect(self.refresh_engine)
        self.setup_button = QPushButton("Set up engine…", self)
        self.setup_button.clicked.connect(self._open_setup)
        buttons_row.addWidget(self.connect_button)
        buttons_row.addWidget(self.setup_button)
        engine_form.addRow(buttons_row)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
            parent=self,
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(engine_box)
        layout.addWidget(buttons)

        self._python_before = settings.resolved_engine_python()
        connection.probe(self._query, self._show_not_running)

    def current_settings(self) -> Settings:
        return replace(
            load_settings(),
            engine_python=self.python_edit.filePath().strip(),
            data_dir=self.data_dir_edit.filePath().strip(),
            port=self.port_spin.value(),
            output_dir=self.output_edit.filePath().strip(),
            output_mode=str(self.output_mode_combo.currentData()),
            score_labels=self.score_labels_check.isChecked(),
            device=self.device_combo.currentText(),
            tile=self.tile_spin.value(),
            overlap=self.overlap_spin.value(),
            threshold=self.threshold_spin.value(),
            export_resolution=self.resolution_spin.value(),
        )

    def refresh_engine(self) -> None:
        """Save what is typed, make sure an engine runs, then show its device and models."""
        save_settings(self.current_settings())
        self.status_label.setText("connecting…")
        self.connection.ensure(self._query, self._show_error)

    def _query(self, endpoint: Endpoint) -> None:
        if sip.isdeleted(self):
            return  # closed while the engine was asked
        client = EngineClient(endpoint)
        self.status_label.setText(f"connected: {endpoint.base_url}")
        call_in_background(
            "SayMap: engine information",
            lambda: (client.health(), client.models()),
            self._show,
            self._show_error,
        )

    def _show(self, answer: tuple[Health, ModelList]) -> None:
        if sip.isdeleted(self):
            return
        self.health, self.models = answer
        health, models = answer
        self.status_label.setText(f"engine {health.engine_version}, torch {health.torch_version}")
        self.device_label.setText(health.device.describe())
        self.device_label.setToolTip(health.device.reason)
        self.model_combo.clear()
        self.model_combo.addItems([m.name for m in models.models])
        self.model_combo.setCurrentText(models.active)
        self.model_combo.setEnabled(True)

    def _show_error(self, message: str) -> None:
        if not sip.isdeleted(self):
            self.status_label.setText(message)

    def _show_not_running(self, reason: str) -> None:
        if not sip.isdeleted(self):
            self.status_label.setText(f"no engine answers ({reason})")

    def accept(self) -> None:
        settings = self.current_settings()
        save_settings(settings)
        python = settings.resolved_engine_python()
        if python != self._python_before:
            self.engine_python_changed.emit(self._python_before, python)
        chosen = self.model_combo.currentText()
        if self.models is not None and chosen and chosen != self.models.active:
            endpoint = self.connection.endpoint
            if endpoint is not None:
                client = EngineClient(endpoint)
                call_in_background(
                    "SayMap: switching model",
                    lambda: client.set_active_model(chosen),
                    lambda _models: None,
                    self._show_error,
                )
        super().accept()


def _folder_widget(parent: QWidget, value: str, placeholder: str) -> QgsFileWidget:
    widget = QgsFileWidget(parent)
    widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
    widget.setFilePath(value)
    widget.lineEdit().setPlaceholderText(placeholder)
    return widget


def _spin(parent: QWidget, low: int, high: int, value: int, special: str) -> QSpinBox:
    spin = QSpinBox(parent)
    spin.setRange(low, high)
    spin.setSpecialValueText(special)
    spin.setValue(value)
    return spin
