"""Engine set-up from QGIS: make a venv, install the engine into it, start it, report the
device. Every step runs as a QProcess (the GUI stays live) and its output goes to the log."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QProcess, QProcessEnvironment, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .call_task import call_in_background
from .engine_client import Endpoint, EngineClient, Health
from .engine_launcher import EngineConnection
from .engine_setup import (
    WHAT_IT_NEEDS,
    Step,
    detect_gpu,
    find_pythons,
    setup_steps,
    source_problem,
)
from .paths import ENGINE_VENV_NAME, source_folder, venv_python
from .settings import load_settings, save_settings

CPU, CUDA = "CPU build of torch", "CUDA build of torch"


class SetupDialog(QDialog):
    """Offered when no engine environment is found; also reachable from Settings."""

    engine_ready = pyqtSignal(object)  # Endpoint
    setup_failed = pyqtSignal(str)

    def __init__(self, connection: EngineConnection, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Set up the SayMap engine")
        self.setMinimumWidth(640)
        self.connection = connection
        self.health: Health | None = None
        self._steps: list[Step] = []
        self._index = -1
        self._process: QProcess | None = None
        settings = load_settings()

        intro = QLabel(
            "SayMap's engine (PyTorch) runs in its own Python environment, never in QGIS's. "
            "This makes one in the folder below and installs the engine into it.",
            self,
        )
        intro.setWordWrap(True)
        self.python_edit = QgsFileWidget(self)
        self.python_edit.lineEdit().setPlaceholderText("looking for Python 3.11+ …")
        self.source_edit = QLineEdit(self)
        source = source_folder()
        self.source_edit.setText(str(source) if source else "")
        self.source_edit.setPlaceholderText("the SayMap source folder, or a saymap-….whl wheel")
        self.source_edit.setToolTip(WHAT_IT_NEEDS)
        self.source_folder_button = QPushButton("Folder…", self)
        self.source_folder_button.setToolTip("Choose the SayMap source folder")
        self.source_folder_button.clicked.connect(self._choose_folder)
        self.source_wheel_button = QPushButton("Wheel…", self)
        self.source_wheel_button.setToolTip("Choose a saymap wheel (.whl) built from the source")
        self.source_wheel_button.clicked.connect(self._choose_wheel)
        source_row = QHBoxLayout()
        source_row.addWidget(self.source_edit, 1)
        source_row.addWidget(self.source_folder_button)
        source_row.addWidget(self.source_wheel_button)
        # Said up front when the plugin came without its source folder (installed from a zip
        # on another machine): what to point it at, since no registry has the engine.
        self.source_note = QLabel(
            ""
            if source
            else f"No SayMap source folder was found beside this plugin. {WHAT_IT_NEEDS}",
            self,
        )
        self.source_note.setWordWrap(True)
        self.source_note.setVisible(source is None)
        self.venv_edit = QgsFileWidget(self)
        self.venv_edit.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.venv_edit.setFilePath(str(settings.resolved_data_dir() / ENGINE_VENV_NAME))
        self.torch_combo = QComboBox(self)
        self.torch_combo.addItems([CPU, CUDA])
        self.gpu_label = QLabel("checking nvidia-smi …", self)
        self.pip_args_edit = QLineEdit(self)
        self.pip_args_edit.setPlaceholderText("extra pip options, e.g. --index-url …")

        form = QFormLayout()
        form.addRow("Python", self.python_edit)
        form.addRow("Install the engine from", source_row)
        form.addRow("", self.source_note)
        form.addRow("Environment folder", self.venv_edit)
        form.addRow("PyTorch", self.torch_combo)
        form.addRow("GPU", self.gpu_label)
        form.addRow("pip options", self.pip_args_edit)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status_label = QLabel("", self)
        self.status_label.setWordWrap(True)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setMinimumHeight(220)
        self.start_button = QPushButton("Make engine environment", self)
        self.start_button.clicked.connect(self.start)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.start_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addWidget(self.log)
        layout.addWidget(self.buttons)

        call_in_background(
            "SayMap: looking for Python and a GPU",
            lambda: (find_pythons(), detect_gpu()),
            self._show_found,
            self._append,
        )

    def _show_found(self, found: tuple[list[tuple[Path, tuple[int, int]]], str | None]) -> None:
        pythons, gpu = found
        if pythons and not self.python_edit.filePath():
            python, version = pythons[0]
            self.python_edit.setFilePath(str(python))
            self._append(f"found Python {version[0]}.{version[1]} at {python}")
        elif not pythons:
            self.python_edit.lineEdit().setPlaceholderText("no Python 3.11+ found: choose one")
        self.gpu_label.setText(gpu or "none found (nvidia-smi absent or sees no GPU)")
        self.torch_combo.setCurrentText(CUDA if gpu else CPU)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "The SayMap source folder")
        if folder:
            self.source_edit.setText(folder)

    def _choose_wheel(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A saymap wheel", "", "Wheels (*.whl)")
        if path:
            self.source_edit.setText(path)

    def planned_steps(self) -> list[Step]:
        python = Path(self.python_edit.filePath().strip())
        return setup_steps(
            python,
            Path(self.venv_edit.filePath().strip()),
            self.source_edit.text().strip(),
            cuda=self.torch_combo.currentText() == CUDA,
            extra_pip_args=tuple(shlex.split(self.pip_args_edit.text())),
        )

    def start(self) -> None:
        python = self.python_edit.filePath().strip()
        if not python or not Path(python).is_file():
            self._fail("Choose a Python 3.11 or newer to build the environment from.")
            return
        problem = source_problem(
            self.source_edit.text(), tuple(shlex.split(self.pip_args_edit.text()))
        )
        if problem is not None:
            self._fail(problem)
            return
        if not self.venv_edit.filePath().strip():
            self._fail("Say where the engine's environment goes.")
            return
        self._steps = self.planned_steps()
        self._index = -1
        self.progress.setRange(0, len(self._steps) + 1)
        self.start_button.setEnabled(False)
        self._next_step()

    def _next_step(self) -> None:
        self._index += 1
        self.progress.setValue(self._index)
        if self._index >= len(self._steps):
            self._start_engine()
            return
        step = self._steps[self._index]
        self.status_label.setText(step.label)
        self._append(f"$ {step.program} {' '.join(step.arguments)}")
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PIP_PROGRESS_BAR", "off")
        for key in ("PYTHONHOME", "PYTHONPATH"):  # QGIS's own; they would leak into the venv
            env.remove(key)
        process.setProcessEnvironment(env)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(self._read_output)
        process.finished.connect(self._step_finished)
        process.errorOccurred.connect(self._step_error)
        self._process = process
        process.start(step.program, list(step.arguments))

    def _read_output(self) -> None:
        if self._process is not None:
            text = bytes(self._process.readAllStandardOutput()).decode("utf-8", "replace")
            self._append(text.rstrip("\n"))

    def _step_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            self._process = None
            step = self._steps[self._index]
            self._fail(f"Could not run {step.program}: is it a Python interpreter?")

    def _step_finished(self, exit_code: int, _status: QProcess.ExitStatus) -> None:
        if self._process is None:
            return
        self._read_output()
        self._process = None
        if exit_code != 0:
            step = self._steps[self._index]
            self._fail(f"{step.label} failed (exit code {exit_code}); the log above says why.")
            return
        self._next_step()

    def _start_engine(self) -> None:
        python = venv_python(Path(self.venv_edit.filePath().strip()))
        save_settings(replace(load_settings(), engine_python=str(python)))
        self.status_label.setText("Starting the engine and asking /v1/health …")
        self._append(f"engine Python set to {python}")
        self.connection.restart(self._check_health, self._fail)

    def _check_health(self, endpoint: Endpoint) -> None:
        client = EngineClient(endpoint)
        call_in_background(
            "SayMap: engine health", client.health, lambda h: self._ready(endpoint, h), self._fail
        )

    def _ready(self, endpoint: Endpoint, health: Health) -> None:
        self.health = health
        self.progress.setValue(self.progress.maximum())
        message = (
            f"The engine is ready: SayMap {health.engine_version}, torch {health.torch_version}, "
            f"on {health.device.describe()}."
        )
        self.status_label.setText(message)
        self._append(message)
        self.start_button.setEnabled(True)
        self.engine_ready.emit(endpoint)

    def _fail(self, message: str) -> None:
        self.status_label.setText(message)
        self._append(message)
        self.start_button.setEnabled(True)
        self.setup_failed.emit(message)

    def _append(self, text: str) -> None:
        if text:
            self.log.appendPlainText(text)

    def reject(self) -> None:
        if self._process is not None:
            process, self._process = self._process, None
            process.kill()
            process.waitForFinished(3000)
        super().reject()
