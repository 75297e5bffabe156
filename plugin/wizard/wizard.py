"""The fine-tune QWizard: Data → Sentences → Settings → Training → Result.

Pages hold widgets; this class builds the train request from them (plan.build_request),
posts it, follows the job with a TrainFollowTask and sets the new model active on Finish.
"""

from __future__ import annotations

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QWidget, QWizard

from ..area import crs_string  # noqa: TID252 (the plugin folder name varies)
from ..call_task import call_in_background  # noqa: TID252 (the plugin folder name varies)
from ..engine_client import Endpoint, EngineClient, JobInfo, ModelList  # noqa: TID252 (the plugin folder name varies)
from . import plan
from .map_tool import FeaturePicker
from .pages_input import DataPage, SentencesPage, SettingsPage, local_path
from .pages_run import ResultPage, TrainingPage
from .train_task import TrainFollowTask, running_train_jobs

TRAINING_PAGE = 3


class FineTuneWizard(QWizard):
    """Opened from the toolbar with the engine's endpoint; emits the new active model list."""

    model_activated = pyqtSignal(object)  # ModelList after the new model was made active
    problem = pyqtSignal(str)  # a sentence for the message bar

    def __init__(self, iface: object, endpoint: Endpoint, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("SayMap: fine-tune the model")
        self.iface = iface
        self.endpoint = endpoint
        self.client = EngineClient(endpoint)
        self.task: TrainFollowTask | None = None
        self.picker: FeaturePicker | None = None
        self.data_page = DataPage(QgsProject.instance())
        self.sentences_page = SentencesPage(self.data_page)
        self.settings_page = SettingsPage()
        self.training_page = TrainingPage()
        self.result_page = ResultPage()
        for page in (
            self.data_page,
            self.sentences_page,
            self.settings_page,
            self.training_page,
            self.result_page,
        ):
            self.addPage(page)
        self.setOption(QWizard.NoBackButtonOnLastPage)
        self.sentences_page.pick_button.toggled.connect(self._picking)
        self.training_page.cancel_button.clicked.connect(self.cancel_training)
        self.currentIdChanged.connect(self._page_changed)
        self.resize(760, 560)
        call_in_background("SayMap: models", self.client.models, self._got_models, self._fail)
        call_in_background(
            "SayMap: running training",
            lambda: running_train_jobs(self.client),
            self._reattach,
            self._fail,
        )
        call_in_background(
            "SayMap: device",
            self.client.health,
            lambda h: setattr(self.settings_page, "device_type", h.device.type),
            self._fail,
        )

    # -- engine answers --------------------------------------------------------------------
    def _got_models(self, models: ModelList) -> None:
        self.settings_page.set_models([m.name for m in models.models], models.active)

    def _fail(self, message: str) -> None:
        self.training_page.status.setText(message)
        self.problem.emit(message)

    # -- picking on the map ----------------------------------------------------------------
    def _picking(self, on: bool) -> None:
        canvas = self.iface.mapCanvas()
        layer = self.data_page.label_layer()
        if on and layer is not None:
            self.picker = FeaturePicker(canvas, layer)
            self.picker.picked.connect(self.sentences_page.add_feature)
            canvas.setMapTool(self.picker)
        elif self.picker is not None:
            canvas.unsetMapTool(self.picker)
            self.picker = None

    # -- training --------------------------------------------------------------------------
    def request(self) -> plan.TrainRequest:
        """The train request the pages describe."""
        settings = self.settings_page
        return plan.build_request(
            name=settings.name.text(),
            rasters=[local_path(r) for r in self.data_page.raster_layers()],
            labels=local_path(self.data_page.label_layer()),
            class_field=self.data_page.class_field.currentField(),
            sentences=[(s, wkt) for s, _, wkt in self.sentences_page.sentences()],
            recipe=settings.recipe_dict(),
            validation=self.validation(),
            base_model=settings.base_model.currentText() or None,
            device=settings.device.currentText(),
        )

    def validation(self) -> dict:
        """The request's validation from the Settings page: an area in a CRS, or a share."""
        kind = self.settings_page.validation_kind.currentData()
        share = self.settings_page.validation.value()
        if kind == "canvas":
            canvas = self.iface.mapCanvas()
            extent, crs = canvas.extent(), canvas.mapSettings().destinationCrs()
        else:
            layer = self.data_page.label_layer()
            extent, crs = layer.extent(), layer.crs()
        bounds = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
        return plan.validation_spec(kind, share, bounds, crs_string(crs))

    def _page_changed(self, page_id: int) -> None:
        if page_id == TRAINING_PAGE and self.training_page.job is None:
            request = self.request()
            self.training_page.status.setText("sending the job to the engine…")
            call_in_background(
                "SayMap: start training",
                lambda: self.client.train(request),
                lambda job: self.follow(job, plan.total_steps(request.recipe)),
                self._fail,
            )
        if page_id == TRAINING_PAGE + 1 and self.training_page.job is not None:
            self.result_page.show_result(self.training_page.job, self.training_page.val_iou)
            self.result_page.add_predictions(self.training_page.job, QgsProject.instance())

    def follow(self, job: JobInfo, total_steps: int) -> None:
        """Show a (new or reattached) train job on the Training page until it ends."""
        self.training_page.start(job, total_steps)
        self.task = TrainFollowTask(self.endpoint, job)
        self.task.updated.connect(self.training_page.show_job)
        self.task.ended.connect(self._ended)
        self.task.failed.connect(self._fail)
        QgsApplication.taskManager().addTask(self.task)

    def _reattach(self, jobs: list[JobInfo]) -> None:
        """A train job still runs in the engine (QGIS was closed, or the wizard): show it."""
        if not jobs or self.training_page.job is not None:
            return
        job = jobs[0]
        recipe = job.request.get("recipe")
        steps = plan.total_steps(recipe) if isinstance(recipe, dict) else 1
        self.training_page.job = job  # so entering the page posts nothing new
        self.setStartId(TRAINING_PAGE)
        self.restart()
        self.follow(job, steps)
        self.training_page.status.setText(f"reattached to the running job {job.id}")

    def _ended(self, job: JobInfo | None) -> None:
        self.task = None
        if job is not None:
            self.training_page.show_job(job)

    def cancel_training(self) -> None:
        if self.task is not None:
            self.training_page.status.setText("cancelling…")
            self.task.request_cancel()

    # -- finish ----------------------------------------------------------------------------
    def accept(self) -> None:
        job = self.training_page.job
        model = (job.result or {}).get("model") if job is not None else None
        if model and self.result_page.make_active.isChecked():
            call_in_background(
                "SayMap: activate model",
                lambda: self.client.set_active_model(str(model)),
                self.model_activated.emit,
                self._fail,
            )
        self._picking(False)
        super().accept()

    def done(self, result: int) -> None:
        """Closing stops following, never the engine's job."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
        super().done(result)
