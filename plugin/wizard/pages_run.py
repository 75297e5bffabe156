"""The wizard's last two pages: Training (a followed engine job) and Result."""

from __future__ import annotations

import time
from pathlib import Path

from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWizardPage,
)

from ..engine_client import JobInfo  # noqa: TID252 (the plugin folder name varies)
from ..errors import SayMapPluginError  # noqa: TID252 (the plugin folder name varies)
from ..layers import add_result_layer  # noqa: TID252 (the plugin folder name varies)
from . import plan
from .loss_plot import LossPlot


class TrainingPage(QWizardPage):
    """Live loss and validation IoU, progress, time left, Cancel. The wizard feeds it.

    A job that failed (or could not be posted) is not the end: Retry starts a new one with
    the pages' current choices, and the fix button goes back to the page where the cause
    can be changed; coming back from there with Next starts a new job too."""

    retry_requested = pyqtSignal()
    fix_requested = pyqtSignal(int)  # the wizard page to go back to

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Training")
        self.setSubTitle(
            "The engine trains in its own process: closing QGIS does not stop it, and the "
            "wizard can reattach to it later."
        )
        self.plot = LossPlot(self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.status = QLabel("starting…", self)
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel training", self)
        self.cancel_button.setToolTip("Stop the job; the previous model stays active.")
        self.retry_button = QPushButton("Retry", self)
        self.retry_button.setToolTip("Start a new job with the choices on the earlier pages.")
        self.fix_button = QPushButton(self)
        self.fix_button.setToolTip("Go back to the page where the cause of the failure is set.")
        buttons = QHBoxLayout()
        for button in (self.cancel_button, self.retry_button, self.fix_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.plot)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.job: JobInfo | None = None
        self.jobs_started: list[str] = []  # ids of the jobs this page followed, in order
        self.posting = False  # a job is being sent to the engine
        self.error: str | None = None  # why the last job failed or could not be posted
        self.val_iou: float | None = None
        self._started = time.monotonic()
        self._fix_page = plan.SETTINGS_PAGE
        self.retry_button.clicked.connect(self.retry_requested)
        self.fix_button.clicked.connect(lambda: self.fix_requested.emit(self._fix_page))
        self._show_retry(False)

    def sending(self) -> None:
        """A new job is on its way to the engine."""
        self.posting, self.error, self.job, self.val_iou = True, None, None, None
        self.plot.clear()
        self.progress.setValue(0)
        self.status.setText("sending the job to the engine…")
        self._show_retry(False)
        self.completeChanged.emit()

    def post_failed(self, message: str) -> None:
        """The engine refused the job (e.g. the name was taken meanwhile): say where to fix."""
        self.posting = False
        self._failed(message)
        self.status.setText(f"the engine refused the job: {message}")

    def needs_new_job(self, name: str) -> bool:
        """Entering the page starts a job unless one is on its way or running, or the job
        that is done made the model `name` (a new name after a success asks for another)."""
        if self.posting:
            return False
        if self.job is None or self.job.state in ("failed", "cancelled"):
            return True
        return self.job.state == "done" and self.job.request.get("name") != name

    def start(self, job: JobInfo, total_steps: int) -> None:
        self.posting = False
        self.job, self.val_iou, self.error = job, None, None
        if job.id not in self.jobs_started:
            self.jobs_started.append(job.id)
        self._started = time.monotonic()
        self.plot.clear(total_steps)
        self.cancel_button.setEnabled(True)
        self._show_retry(False)
        self.completeChanged.emit()

    def show_job(self, job: JobInfo) -> None:
        """One poll's answer: plot the new point, update progress and time left."""
        self.job = job
        point = plan.metric_point(job.metrics)
        if point is not None:
            step, loss, val = point
            self.plot.add(step, loss, val)
            if val is not None:
                self.val_iou = val
        self.progress.setValue(round(job.progress * 100))
        left = ""
        if 0.02 < job.progress < 1.0:
            elapsed = time.monotonic() - self._started
            left = f"; {plan.describe_seconds(elapsed * (1 - job.progress) / job.progress)} left"
        self.status.setText(f"{job.state}: {job.message}{left}")
        if job.terminal:
            self.cancel_button.setEnabled(False)
            if job.state == "failed":
                self._failed(job.error or job.message)
                self.status.setText(f"failed: {job.error or job.message}")
            elif job.state == "cancelled":
                self._show_retry(True)
                self.fix_button.setVisible(False)
                self.status.setText("cancelled: the previous model stays active")
        self.completeChanged.emit()

    def _failed(self, message: str) -> None:
        self.error = message
        self._fix_page = plan.fix_page(message)
        self.fix_button.setText(f"Back to {plan.PAGE_NAMES[self._fix_page]} to fix it")
        self.cancel_button.setEnabled(False)
        self._show_retry(True)
        self.completeChanged.emit()

    def _show_retry(self, shown: bool) -> None:
        self.retry_button.setVisible(shown)
        self.fix_button.setVisible(shown)

    def isComplete(self) -> bool:
        return self.job is not None and self.job.state == "done"


class ResultPage(QWizardPage):
    """The new model's validation metrics and predictions; make it the toolbar's model."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Result")
        self.model = QLabel(self)
        self.val_iou = QLabel(self)
        self.before_iou = QLabel(self)
        self.details = QLabel(self)
        self.details.setWordWrap(True)
        self.predictions = QLabel(self)
        self.predictions.setWordWrap(True)
        self.reproduce = QLabel(self)
        self.reproduce.setWordWrap(True)
        self.reproduce.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.make_active = QCheckBox("Use it in the SayMap toolbar", self)
        self.make_active.setChecked(True)
        form = QFormLayout(self)
        form.addRow("Model", self.model)
        form.addRow("Validation IoU before", self.before_iou)
        form.addRow("Validation IoU after", self.val_iou)
        form.addRow("Metrics", self.details)
        form.addRow("Predictions", self.predictions)
        form.addRow("Check it", self.reproduce)
        form.addRow("", self.make_active)
        self.prediction_layers: list[QgsVectorLayer] = []

    def show_result(self, job: JobInfo, val_iou: float | None) -> None:
        result = job.result or {}
        self.model.setText(str(result.get("model", "")))
        metrics = job.metrics or {}
        after = f"{val_iou:.4f}" if val_iou is not None else "not measured"
        before = metrics.get("val_iou_before")
        self.before_iou.setText(f"{before:.4f}" if before is not None else "not measured")
        self.val_iou.setText(after)
        shown = {k: v for k, v in metrics.items() if k in ("step", "loss") or "IoU" in k}
        shown.pop("val_iou_before", None)
        self.details.setText(
            ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
            + f"; {result.get('steps', '?')} steps in {result.get('seconds', '?')} s"
        )

    def add_predictions(self, job: JobInfo, project: QgsProject) -> None:
        """The model's predictions on the validation area, as layers (once per job)."""
        if self.prediction_layers:
            return
        result = job.result or {}
        paths = [Path(p) for p in result.get("validation_predictions") or []]
        names = []
        for path in paths:
            name = f"{result.get('model', 'model')} on validation ({path.stem.split('-', 1)[-1]})"
            try:
                self.prediction_layers.append(add_result_layer(path, name, project))
            except SayMapPluginError as exc:
                names.append(str(exc))
                continue
            names.append(f"{name}: {self.prediction_layers[-1].featureCount()} polygons")
        self.predictions.setText("\n".join(names) or "none (no validation area)")
        chips = result.get("validation_chips")
        self.reproduce.setText(
            f"saymap eval --checkpoint {result.get('model_path')} --data {chips}"
            if chips
            else "no validation chips were kept"
        )
