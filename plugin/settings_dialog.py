"""Settings: which engine Python, where results go, tiling options, and what the engine
runs on (device, active model), read from /v1/health and /v1/models in the background."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import (
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
from .settings import Settings, load_settings, save_settings

DEVICES = ("auto", "cpu", "cuda", "mps")


class SettingsDialog(QDialog):
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
        form.addRow("Results folder", self.output_edit)
        form.addRow("Device", self.device_combo)
        form.addRow("Tile size (px)", self.tile_spin)
        form.addRow("Tile overlap (px)", self.overlap_spin)
        form.addRow("Threshold", self.threshold_spin)
        form.addRow("Export resolution (web layers)", self.resolution_spin)

        engine_box = QGroupBox("Engine", self)
        engine_form = QFormLayout(engine_box)
        self.status_label = QLabel("not connected", self)
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

        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, parent=self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(engine_box)
        layout.addWidget(buttons)

        if connection.endpoint is not None:
            self._query(connection.endpoint)

    def current_settings(self) -> Settings:
        return replace(
            load_settings(),
            engine_python=self.python_edit.filePath().strip(),
            data_dir=self.data_dir_edit.filePath().strip(),
            port=self.port_spin.value(),
            output_dir=self.output_edit.filePath().strip(),
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
        client = EngineClient(endpoint)
        self.status_label.setText(f"connected: {endpoint.base_url}")
        call_in_background(
            "SayMap: engine information",
            lambda: (client.health(), client.models()),
            self._show,
            self._show_error,
        )

    def _show(self, answer: tuple[Health, ModelList]) -> None:
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
        self.status_label.setText(message)
        self.status_label.setWordWrap(True)

    def accept(self) -> None:
        save_settings(self.current_settings())
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
    widget.setStorageMode(QgsFileWidget.GetDirectory)
    widget.setFilePath(value)
    widget.lineEdit().setPlaceholderText(placeholder)
    return widget


def _spin(parent: QWidget, low: int, high: int, value: int, special: str) -> QSpinBox:
    spin = QSpinBox(parent)
    spin.setRange(low, high)
    spin.setSpecialValueText(special)
    spin.setValue(value)
    return spin
