"""The fine-tune QWizard: Data → Sentences → Settings → Training → Result.

Pages hold widgets; this class builds the train request from them (plan.build_request),
asks the engine what it would train on (POST /v1/train/preview, shown on the Sentences and
Settings pages and on the map) and for suggested sentences (POST /v1/train/suggest), posts
it, follows the job with a TrainFollowTask, starts a new job when a failed one is retried,
and sets the new model active on Finish. The choices are remembered in the project
(memory.py).
"""

from __future__ import annotations

import contextlib

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsProject
from qgis.PyQt.QtCore import QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QWidget, QWizard

from ..area import crs_string  # noqa: TID252 (the plugin folder name varies)
from ..call_task import call_in_background  # noqa: TID252 (the plugin folder name varies)
from ..engine_client import (  # noqa: TID252 (the plugin folder name varies)
    Endpoint,
    EngineClient,
    JobInfo,
    ModelList,
    SentenceSuggestion,
)
from ..errors import EngineRequestError  # noqa: TID252 (the plugin folder name varies)
from . import plan
from .map_tool import FeaturePicker
from .memory import load_choices, save_choices
from .overlay import ValidationOverlay
from .page_data import DataPage, local_path
from .page_sentences import SentencesPage
from .page_settings import SettingsPage
from .pages_run import ResultPage, TrainingPage
from .train_task import TrainFollowTask, running_train_jobs

SENTENCES_PAGE, SETTINGS_PAGE, TRAINING_PAGE = 1, 2, 3
PREVIEW_DELAY_MS = 300  # typing a sentence asks the engine once, after a pause
SUGGEST_LIMIT = 20  # sentences one "Suggest sentences" click adds at most
SUGGEST_TIMEOUT_S = 180.0  # measuring every chip of a large layer takes a while
MOVE_SIDES = ("east", "west", "north", "south")


def suggestions_or_none(
    client: EngineClient, request: plan.TrainRequest
) -> list[SentenceSuggestion] | None:
    """The engine's suggested sentences, or None from an engine that has none (404)."""
    try:
        return client.train_suggest(request, SUGGEST_LIMIT)
    except EngineRequestError as exc:
        if exc.status in (404, 405):
            return None
        raise


def preview_or_none(client: EngineClient, request: plan.TrainRequest) -> plan.TrainPreview | None:
    """The engine's preview, or None from an engine that has no preview (404)."""
    try:
        return plan.TrainPreview.from_json(client.train_preview(request))
    except EngineRequestError as exc:
        if exc.status in (404, 405):
            return None
        raise


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
        self.project = QgsProject.instance()
        self.remembered = load_choices(self.project)
        self.task: TrainFollowTask | None = None
        self.picker: FeaturePicker | None = None
        self.overlay = ValidationOverlay(iface.mapCanvas())
        self.preview: plan.TrainPreview | None = None
        self._preview_seq = 0
        self.moving = False  # trying validation strips on each side
        self.data_page = DataPage(self.project, self.remembered)
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
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage)
        self.settings_page.restore(self.remembered)
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_DELAY_MS)
        self._preview_timer.timeout.connect(self.request_preview)
        self.sentences_page.pick_button.toggled.connect(self._picking)
        self.sentences_page.preview_wanted.connect(self.schedule_preview)
        self.sentences_page.move_validation_requested.connect(self.move_validation)
        self.sentences_page.suggestions_wanted.connect(self.suggest_sentences)
        self.settings_page.preview_wanted.connect(self.schedule_preview)
        self.training_page.cancel_button.clicked.connect(self.cancel_training)
        self.training_page.retry_requested.connect(self.start_training)
        self.training_page.fix_requested.connect(self.go_back_to)
        self.data_page.labels.layerChanged.connect(self._labels_changed)
        iface.mapCanvas().extentsChanged.connect(self._canvas_moved)
        self.currentIdChanged.connect(self._page_changed)
        self.resize(820, 680)
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
        chosen = self.settings_page.base_model.currentText() or self.remembered.get("base_model")
        self.settings_page.set_models([m.name for m in models.models], models.active, chosen)

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

    # -- the request and its preview -------------------------------------------------------
    def request(self, validation: dict | None = None) -> plan.TrainRequest:
        """The train request the pages describe (with another validation, when given)."""
        settings = self.settings_page
        settings.method = self.sentences_page.method()
        return plan.build_request(
            name=settings.name.text(),
            rasters=[local_path(r) for r in self.data_page.raster_layers()],
            labels=local_path(self.data_page.label_layer()),
            class_field=self.data_page.class_field.currentField(),
            sentences=[(s, wkt) for s, _, wkt in self.sentences_page.sentences()],
            recipe=settings.recipe_dict(),
            validation=validation if validation is not None else self.validation(),
            base_model=settings.base_model.currentText() or None,
            device=settings.device.currentText(),
        )

    def validation_area(
        self, kind: str | None = None, side: str | None = None
    ) -> tuple[tuple[float, float, float, float], QgsCoordinateReferenceSystem] | None:
        """The validation area's bounds and CRS (None for a share of the features)."""
        page = self.settings_page
        kind = kind or page.validation_kind.currentData()
        if kind == "fraction":
            return None
        if kind == "canvas":
            canvas = self.iface.mapCanvas()
            extent, crs = canvas.extent(), canvas.mapSettings().destinationCrs()
            return (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()), crs
        layer = self.data_page.label_layer()
        if layer is None:
            return None
        extent = layer.extent()
        bounds = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
        side = side or page.validation_side.currentData()
        return plan.strip_bounds(bounds, page.validation.value(), side)[0], layer.crs()

    def validation(self, kind: str | None = None, side: str | None = None) -> dict:
        """The request's validation from the Settings page: an area in a CRS, or a share."""
        page = self.settings_page
        kind = kind or page.validation_kind.currentData()
        if kind == "fraction":
            return plan.validation_spec("fraction", page.validation.value(), None, "")
        area = self.validation_area(kind, side)
        if area is None:
            raise ValueError("choose a label layer: the validation strip is a part of its extent")
        bounds, crs = area
        return {"area": {"bounds": [float(v) for v in bounds], "crs": crs_string(crs)}}

    def describe_validation(self) -> str:
        page = self.settings_page
        layer = self.data_page.label_layer()
        extent = None
        if layer is not None:
            e = layer.extent()
            extent = (e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum())
        return plan.describe_validation(
            page.validation_kind.currentData(),
            page.validation.value(),
            extent,
            page.validation_side.currentData(),
        )

    def _ready_for_preview(self) -> bool:
        data = self.data_page
        return bool(
            data.raster_layers()
            and data.label_layer() is not None
            and data.class_field.currentField()
            and all(local_path(r) for r in [*data.raster_layers(), data.label_layer()])
        )

    def schedule_preview(self) -> None:
        """Ask the engine again after a short pause (typing does not ask per keystroke);
        until it answers, neither page lets Next through."""
        self._preview_seq += 1  # answers to earlier questions are stale from now on
        self.sentences_page.show_checking()
        self.settings_page.show_checking()
        self._preview_timer.start()

    def preview_pending(self) -> bool:
        """A question to the engine is waiting or on its way (the pages hold Next). Only the
        Sentences and Settings pages ask; elsewhere nothing waits on the answer."""
        if self.currentId() not in (SENTENCES_PAGE, SETTINGS_PAGE):
            return False
        return bool(
            self._preview_timer.isActive()
            or self.sentences_page.checking
            or self.settings_page.checking
            or self.moving
        )

    def request_preview(self) -> None:
        if self.currentId() not in (SENTENCES_PAGE, SETTINGS_PAGE):
            return  # asked again on entering either page
        self._preview_seq += 1
        seq = self._preview_seq
        if not self._ready_for_preview():
            self._got_preview(seq, None, "choose local raster files and a label layer first")
            return
        try:
            request = self.request()
        except ValueError as exc:
            self._got_preview(seq, None, str(exc))
            return
        call_in_background(
            "SayMap: preview training",
            lambda: preview_or_none(self.client, request),
            lambda preview: self._got_preview(seq, preview, None),
            lambda message: self._got_preview(seq, None, message),
        )

    def _got_preview(self, seq: int, preview: plan.TrainPreview | None, error: str | None) -> None:
        if seq != self._preview_seq:
            return  # the pages changed since: a newer question is on its way
        self.preview = preview
        self.sentences_page.show_preview(preview, error)
        self.settings_page.show_preview(preview, error)
        self._show_validation()

    def _show_validation(self) -> None:
        """The validation area on the map and in words, each sentence coloured by its fate."""
        page = self.sentences_page
        kind = self.settings_page.validation_kind.currentData()
        page.set_validation_note(
            f"Validation: {self.describe_validation()} (red on the map).",
            movable=kind in ("strip", "canvas") and not self.moving,
        )
        if self.currentId() not in (SENTENCES_PAGE, SETTINGS_PAGE):
            self.overlay.clear()
            return
        layer = self.data_page.label_layer()
        crs = layer.crs() if layer is not None else QgsCoordinateReferenceSystem()
        rows = page.sentence_rows()
        sentences = [
            (s[2], crs, page.row_fate(row)) for s, row in zip(page.sentences(), rows, strict=True)
        ]
        self.overlay.show(self.validation_area(), sentences)

    def _labels_changed(self, _layer: object) -> None:
        if self.currentId() in (SENTENCES_PAGE, SETTINGS_PAGE):
            self.schedule_preview()

    def _canvas_moved(self) -> None:
        if self.settings_page.validation_kind.currentData() == "canvas":
            self.schedule_preview()

    # -- suggested sentences ---------------------------------------------------------------
    def suggest_sentences(self) -> None:
        """Ask the engine for sentences about the label features (none about a feature the
        page's sentences describe) and add them as rows, off the GUI thread."""
        page = self.sentences_page
        if not self._ready_for_preview():
            page.suggestions_failed("choose local raster files and a label layer first")
            return
        try:
            request = self.request()
        except ValueError as exc:
            page.suggestions_failed(str(exc))
            return
        client = EngineClient(self.endpoint, timeout=SUGGEST_TIMEOUT_S)
        call_in_background(
            "SayMap: suggest sentences",
            lambda: suggestions_or_none(client, request),
            page.add_suggestions,
            page.suggestions_failed,
        )

    # -- moving the validation area --------------------------------------------------------
    def move_validation(self) -> None:
        """Try the strip on each side of the labels' extent (the engine's preview for each)
        and keep the one that leaves the most sentences to train on."""
        if not self._ready_for_preview() or self.moving:
            return
        current = self.settings_page.validation_side.currentData()
        sides = sorted(MOVE_SIDES, key=lambda s: s != current)  # the current one wins ties
        try:
            requests = [(side, self.request(self.validation("strip", side))) for side in sides]
        except ValueError as exc:
            self.sentences_page.set_validation_note(str(exc), movable=False)
            return
        self.moving = True
        self.sentences_page.set_validation_note(
            "Trying the validation strip on each side of the labels' extent…", movable=False
        )

        def work() -> list[tuple[str, plan.TrainPreview | None]]:
            return [(side, preview_or_none(self.client, r)) for side, r in requests]

        call_in_background("SayMap: move validation", work, self._moved, self._move_failed)

    def _moved(self, answers: list[tuple[str, plan.TrainPreview | None]]) -> None:
        self.moving = False
        usable = [(side, p) for side, p in answers if p is not None and not p.problem]
        if not usable:
            usable = [(side, p) for side, p in answers if p is not None]
        if not usable:
            self._move_failed("the engine could not preview any strip")
            return
        side, _ = max(usable, key=lambda a: (a[1].train_full, not a[1].problem))
        self.settings_page.set_validation("strip", side)  # asks for a new preview

    def _move_failed(self, message: str) -> None:
        self.moving = False
        self.sentences_page.set_validation_note(
            f"The validation area could not be moved: {message}", movable=True
        )

    # -- pages -----------------------------------------------------------------------------
    def _page_changed(self, page_id: int) -> None:
        self.remember()
        if page_id == SENTENCES_PAGE and not self.sentences_page.table.rowCount():
            layer = self.data_page.label_layer()
            if layer is not None and layer.id() == self.remembered.get("labels"):
                self.sentences_page.restore(self.remembered)
        if page_id in (SENTENCES_PAGE, SETTINGS_PAGE):
            self.schedule_preview()
            self._show_validation()
        else:
            self.overlay.clear()
            if self.sentences_page.pick_button.isChecked():
                self.sentences_page.pick_button.setChecked(False)
        if page_id == TRAINING_PAGE and self.training_page.needs_new_job(
            self.settings_page.name.text()
        ):
            self.start_training()
        if page_id == TRAINING_PAGE + 1 and self.training_page.job is not None:
            self.result_page.show_result(self.training_page.job, self.training_page.val_iou)
            self.result_page.add_predictions(self.training_page.job, self.project)

    def go_back_to(self, page_id: int) -> None:
        """Back, page by page, to the page where a failure's cause is set."""
        while self.currentId() > page_id:
            self.back()

    # -- training --------------------------------------------------------------------------
    def start_training(self) -> None:
        """Post a new job with the pages' current choices (first time, or a retry)."""
        if self.task is not None:
            return  # a job is still being followed
        try:
            request = self.request()
        except ValueError as exc:
            self.training_page.post_failed(str(exc))
            return
        self.training_page.sending()
        call_in_background(
            "SayMap: start training",
            lambda: self.client.train(request),
            lambda job: self.follow(job, plan.total_steps(request.recipe)),
            self._post_failed,
        )

    def _post_failed(self, message: str) -> None:
        """The engine refused the job: say so, and list its models again (a refusal may be
        a name registered meanwhile, which the Settings page should now know)."""
        self.training_page.post_failed(message)
        call_in_background("SayMap: models", self.client.models, self._got_models, self._fail)

    def follow(self, job: JobInfo, total_steps: int) -> None:
        """Show a (new or reattached) train job on the Training page until it ends."""
        self.training_page.start(job, total_steps)
        self.task = TrainFollowTask(self.endpoint, job)
        self.task.updated.connect(self.training_page.show_job)
        self.task.ended.connect(self._ended)
        self.task.failed.connect(self._follow_failed)
        QgsApplication.taskManager().addTask(self.task)

    def _reattach(self, jobs: list[JobInfo]) -> None:
        """A train job still runs in the engine (QGIS was closed, or the wizard): show it."""
        if not jobs or self.training_page.job is not None or self.training_page.posting:
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
            if job.state == "done":  # its name is taken now: another run needs another one
                name = str(job.request.get("name", ""))
                self.settings_page.taken_names.add(name)
                self.settings_page.own_names.add(name)

    def _follow_failed(self, message: str) -> None:
        self.task = None
        self._fail(message)

    def cancel_training(self) -> None:
        if self.task is not None:
            self.training_page.status.setText("cancelling…")
            self.task.request_cancel()

    # -- memory ----------------------------------------------------------------------------
    def remember(self) -> None:
        """Keep the pages' choices in the project for the next time the wizard opens."""
        if not self.data_page.initialized:
            return  # reattached straight to Training: the pages hold nothing of the user's
        choices = {
            **self.data_page.choices(),
            **self.sentences_page.choices(),
            **self.settings_page.choices(),
        }
        if not self.sentences_page.table.rowCount() and self.remembered.get("sentences"):
            # the Sentences page was not reached: keep the remembered rows
            choices.update(sentences=self.remembered["sentences"])
        self.remembered = choices
        save_choices(self.project, choices)

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
        self.remember()
        self._preview_timer.stop()
        self.overlay.clear()
        self._picking(False)
        with contextlib.suppress(TypeError):  # already disconnected
            self.iface.mapCanvas().extentsChanged.disconnect(self._canvas_moved)
        if self.task is not None:
            self.task.cancel()
            self.task = None
        super().done(result)
