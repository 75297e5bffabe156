"""From a RunInput to a layer: build the engine request, make sure an engine answers, check
the raster against the active model's card, run the task, add the result. Failures end in
one message bar in QGIS's words (messages.py), never in an escaped exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsProcessingUtils, QgsProject
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .area import AreaChoice, aoi_extent_in, bounds_aoi, crs_string, selection_aoi
from .call_task import call_in_background
from .engine_client import Aoi, Endpoint, EngineClient, JobInfo, ModelList, SegmentRequest
from .engine_launcher import LOG_TAG, EngineConnection
from .errors import RasterExportError, SayMapPluginError
from .layers import (
    add_result_layers,
    group_hidden,
    layer_name,
    project_layer_names,
    rasters_label,
    result_path,
    results_folder,
    slug,
)
from .message_bar import MessageBoard
from .messages import ENGINE_GONE, NO_CRS, Problem, explain, plain
from .raster_export import ExportPlan, local_raster_path, plan_export
from .request import join_prompts, segment_request
from .resolution import resolution_warning
from .segment_task import SegmentTask
from .settings import OUTPUT_TEMPORARY, Settings, remember_prompt
from .toolbar import ALL_VISIBLE, RunInput, SayMapToolbar

Exports = tuple[ExportPlan, ...]  # layers that are not local files, written before the job


class SegmentRunner(QObject):
    """Owns at most one run at a time; the toolbar shows its progress."""

    layer_added = pyqtSignal(object)  # QgsVectorLayer
    run_failed = pyqtSignal(str)  # the message the user was shown
    run_cancelled = pyqtSignal()
    run_held = pyqtSignal(str)  # not started: the raster is far outside the model's range

    def __init__(
        self,
        iface: object,
        connection: EngineConnection,
        toolbar: SayMapToolbar,
        settings_provider: Callable[[], Settings],
        on_engine_failed: Callable[[str], None],
        parent: QObject | None = None,
        board: MessageBoard | None = None,
    ) -> None:
        super().__init__(parent)
        self.iface = iface
        self.connection = connection
        self.toolbar = toolbar
        self._settings = settings_provider
        self._on_engine_failed = on_engine_failed
        self.board = board or MessageBoard(iface.messageBar)
        self.task: SegmentTask | None = None
        self.models: ModelList | None = None  # the engine's models, as of the last run
        self._connecting = False
        self._run_token = 0  # bumped on cancel so a late engine answer starts nothing
        self._input: RunInput | None = None  # the run going on, for "run again with …"
        self._raster_name = ""

    @property
    def busy(self) -> bool:
        return self.task is not None or self._connecting

    def run(self, run_input: RunInput) -> None:
        if self.busy:
            self._message(
                "A SayMap run is already going; cancel it or wait.", Qgis.MessageLevel.Warning
            )
            return
        settings = self._settings()
        try:
            request, exports = self.build_request(run_input, settings)
        except SayMapPluginError as exc:
            self._message(explain(exc).text, Qgis.MessageLevel.Warning)
            return
        self._input = run_input
        self._raster_name = rasters_label([layer.name() for layer in run_input.layers()])
        self.toolbar.set_history(remember_prompt(join_prompts(run_input.prompts)))
        self.toolbar.set_busy(True, "connecting to the engine")
        self._connecting = True
        self._run_token += 1
        token = self._run_token
        self.connection.ensure(
            lambda endpoint: self._check_model(token, endpoint, request, exports),
            lambda message: self._engine_failed(token, message),
        )

    def build_request(
        self, run_input: RunInput, settings: Settings
    ) -> tuple[SegmentRequest, Exports]:
        """The engine request for the toolbar's state (pure apart from reading the layers),
        and the exports to write first for layers that are not local files. Several rasters
        ("all visible rasters") are one collection job."""
        layers = run_input.layers()
        if run_input.all_visible and not layers:
            raise SayMapPluginError(
                "No raster layer is shown on the map: tick the rasters to segment in the "
                "Layers panel, or choose one in the SayMap toolbar."
            )
        if not layers or not all(layer.isValid() for layer in layers):
            raise SayMapPluginError("Choose a raster layer in the SayMap toolbar first.")
        aoi = self._aoi(run_input)
        output = result_path(self._output_folder(settings), run_input.prompts, datetime.now())
        paths: list[Path] = []
        exports: list[ExportPlan] = []
        for index, layer in enumerate(layers):
            raster_path = local_raster_path(layer)
            if raster_path is None:
                suffix = f"_{index + 1}" if len(layers) > 1 else ""
                exports.append(self._export_plan(layer, aoi, settings, suffix, run_input))
                raster_path = exports[-1].path
            paths.append(raster_path)
        request = segment_request(
            layers, paths, run_input.prompts, output, settings,
            aoi=aoi, assume_crs=run_input.assume_crs,
        )  # fmt: skip
        return request, tuple(exports)

    def _output_folder(self, settings: Settings) -> Path:
        """Where the engine writes: the results folder, or QGIS's temporary folder when
        the result becomes a temporary layer."""
        if settings.output_mode == OUTPUT_TEMPORARY:
            return Path(QgsProcessingUtils.tempFolder())
        project = QgsProject.instance()
        folder = results_folder(
            settings.output_dir, project, settings.resolved_data_dir() / "results"
        )
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SayMapPluginError(
                f"Cannot make the results folder {folder} ({exc.strerror}); choose another "
                "in SayMap Settings."
            ) from exc
        return folder

    def _aoi(self, run_input: RunInput) -> Aoi | None:
        if run_input.area == AreaChoice.CANVAS_EXTENT:
            canvas = self.iface.mapCanvas()
            return bounds_aoi(canvas.extent(), canvas.mapSettings().destinationCrs())
        if run_input.area == AreaChoice.SELECTED_FEATURES:
            return selection_aoi(run_input.polygon_layer)
        return None

    def _export_plan(
        self, layer: object, aoi: Aoi | None, settings: Settings, suffix: str, run_input: RunInput
    ) -> ExportPlan:
        extent = None
        if aoi is not None:
            extent = aoi_extent_in(aoi, layer.crs(), QgsProject.instance())
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{slug(layer.name())}_{stamp}{suffix}.tif"
        path = settings.resolved_data_dir() / "exports" / name
        try:
            return plan_export(layer, extent, settings.export_resolution, Path(path))
        except RasterExportError as exc:
            if not run_input.all_visible:
                raise
            raise RasterExportError(
                f"{exc} Or hide “{layer.name()}” to leave it out of “{ALL_VISIBLE}”."
            ) from exc

    # -- before the task: the active model's card --------------------------------------------
    def _check_model(
        self, token: int, endpoint: Endpoint, request: SegmentRequest, exports: Exports
    ) -> None:
        """Read the engine's models (the active one's card), then start or hold the run."""
        if token != self._run_token or not self._connecting:
            return
        self.toolbar.set_status("reading the model card")

        def read(models: ModelList) -> None:
            self.models = models
            self._after_check(token, endpoint, request, exports)

        def unread(_message: str) -> None:  # the task will meet the same problem and say it
            self._after_check(token, endpoint, request, exports)

        call_in_background("SayMap: model card", EngineClient(endpoint).models, read, unread)

    def active_card(self) -> dict:
        if self.models is None:
            return {}
        active = next((m for m in self.models.models if m.name == self.models.active), None)
        return dict(active.card) if active is not None else {}

    def _after_check(
        self, token: int, endpoint: Endpoint, request: SegmentRequest, exports: Exports
    ) -> None:
        if token != self._run_token or not self._connecting:
            return  # cancelled meanwhile
        run_input = self._input
        if run_input is not None and not run_input.resolution_checked:
            warning = self._resolution_warning(run_input)
            if warning:
                self._connecting = False
                self._idle()
                again = replace(run_input, resolution_checked=True)
                self.board.say(
                    warning + " Run anyway?",
                    Qgis.MessageLevel.Warning,
                    buttons=[("Run anyway", lambda: self.run(again))],
                )
                self.run_held.emit(warning)
                return
        self._start_task(token, endpoint, request, exports)

    def _resolution_warning(self, run_input: RunInput) -> str | None:
        """The first raster read from its own file that is far outside the model's range
        (an export is written at the resolution Settings chose)."""
        for layer in run_input.layers():
            if local_raster_path(layer) is None:
                continue
            warning = resolution_warning(layer, self.active_card(), QgsProject.instance())
            if warning:
                return warning
        return None

    def _start_task(
        self, token: int, endpoint: Endpoint, request: SegmentRequest, exports: Exports
    ) -> None:
        if token != self._run_token or not self._connecting:
            return  # cancelled while the engine was starting
        self._connecting = False
        task = SegmentTask(
            endpoint, request, self._done, self._failed, self._cancelled, exports=exports
        )
        task.progressChanged.connect(self.toolbar.set_progress)
        task.status.connect(self.toolbar.set_status)
        self.task = task
        self.toolbar.set_status("sending the job")
        QgsApplication.taskManager().addTask(task)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        elif self._connecting:
            self._run_token += 1
            self._cancelled()

    def shutdown(self) -> None:
        """Plugin unload: cancel the run and make sure nothing calls back into us."""
        self._run_token += 1
        self._connecting = False
        if self.task is not None:
            self.task.detach()
            self.task.cancel()
            self.task = None

    # -- after the task --------------------------------------------------------------------
    def _engine_failed(self, token: int, message: str) -> None:
        if token != self._run_token:
            return
        self._connecting = False
        self._idle()
        self._on_engine_failed(message)
        self.run_failed.emit(message)

    def _done(self, job: JobInfo) -> None:
        request = self.task.request if self.task is not None else None
        self.task = None
        self._idle()
        if request is None or not job.output:
            self._failed(Problem("failed", "The engine finished without a result file."))
            return
        settings = self._settings()
        project = QgsProject.instance()
        result = job.result or {}
        model = str(result.get("model") or "")
        taken = project_layer_names(project)
        names: dict[str, str] = {}  # the GeoPackage's layer → its name in QGIS
        for table, prompts in job.result_layers(request.prompts).items():
            names[table] = layer_name(prompts, self._raster_name, model, taken)
            taken.add(names[table])
        hidden = group_hidden(project)
        try:
            layers = add_result_layers(
                Path(job.output),
                names,
                project,
                score_labels=settings.score_labels,
                temporary=settings.output_mode == OUTPUT_TEMPORARY,
            )
        except SayMapPluginError as exc:
            self._failed(explain(exc))
            return
        count = result.get("n_features", sum(layer.featureCount() for layer in layers))
        where = "a temporary layer" if layers[0].providerType() == "memory" else job.output
        if len(layers) > 1:
            where = where.replace("a temporary layer", "temporary layers")
        shown = ", ".join(f"“{layer.name()}”" for layer in layers)
        self._message(f"{shown}: {count} features in {where}", Qgis.MessageLevel.Success)
        if hidden:
            self._message(
                f"The “SayMap” group was hidden; it is shown again so that {shown} can be seen.",
                Qgis.MessageLevel.Info,
            )
        for warning in result.get("warnings") or ():  # e.g. an unknown class name
            self._message(plain(str(warning)), Qgis.MessageLevel.Warning)
        for layer in layers:
            self.layer_added.emit(layer)

    def _failed(self, problem: Problem) -> None:
        self.task = None
        self._idle()
        if problem.kind == ENGINE_GONE:
            self.connection.forget()  # only then: a refused request leaves the engine running
        text, buttons = self._ways_out(problem)
        self.board.say(text, Qgis.MessageLevel.Critical, buttons=buttons)
        QgsMessageLog.logMessage(text, LOG_TAG, Qgis.MessageLevel.Critical)
        self.run_failed.emit(text)

    def _ways_out(self, problem: Problem) -> tuple[str, list[tuple[str, Callable[[], None]]]]:
        """The failure's text and buttons: for a raster with no CRS, run again with the
        project's CRS, or open the layer's properties to set one."""
        run_input = self._input
        buttons: list[tuple[str, Callable[[], None]]] = []
        if problem.kind != NO_CRS or run_input is None or not run_input.layers():
            return problem.text, buttons
        text = problem.text
        project_crs = QgsProject.instance().crs()
        if project_crs.isValid():
            name = project_crs.authid() or project_crs.description()
            text += f" Or run again assuming the project's CRS ({name})."
            again = replace(run_input, assume_crs=crs_string(project_crs))
            buttons.append((f"Use the project's CRS ({name})", lambda: self.run(again)))
        show = getattr(self.iface, "showLayerProperties", None)
        if show is not None and run_input.raster is not None and not run_input.all_visible:
            raster = run_input.raster
            buttons.append(("Layer Properties…", lambda: show(raster, "mOptsPage_Source")))
        return text, buttons

    def _cancelled(self) -> None:
        self.task = None
        self._connecting = False
        self._idle()
        self._message("SayMap run cancelled; no layer was added.", Qgis.MessageLevel.Info)
        self.run_cancelled.emit()

    def _idle(self) -> None:
        self.toolbar.set_busy(False)

    def _message(self, text: str, level: Qgis.MessageLevel) -> None:
        self.board.say(text, level)
