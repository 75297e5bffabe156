"""The wizard's last two pages: Training (a followed engine job) and Result."""

from __future__ import annotations

import time
from pathlib import Path

from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QFormLayout,
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
    """Live loss and validation IoU, progress, time left, Cancel. The wizard feeds it."""

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
        layout = QVBoxLayout(self)
        layout.addWidget(self.plot)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.cancel_button)
        self.job: JobInfo | None = None
        self.val_iou: float | None = None
        self._started = time.monotonic()

    def start(self, job: JobInfo, total_steps: int) -> None:
        self.job, self.val_iou = job, None
        self._started = time.monotonic()
        self.plot.clear(total_steps)
        self.cancel_button.setEnabled(True)
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
                self.status.setText(f"failed: {job.error or job.message}")
            elif job.state == "cancelled":
                self.status.setText("cancelled: the previous model stays active")
        self.completeChanged.emit()

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
        self.reproduce.setTextInteractionFlags(Qt.TextSelectableByMouse)
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
