"""From a RunInput to a layer: build the engine request, make sure an engine answers, run
the task, add the result. Failures end in one message bar, never in an escaped exception.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .area import AreaChoice, aoi_extent_in, bounds_aoi, crs_string, selection_aoi
from .engine_client import Aoi, Endpoint, JobInfo, SegmentRequest
from .engine_launcher import LOG_TAG, EngineConnection
from .errors import SayMapPluginError
from .layers import add_result_layer, layer_name, result_path, results_folder, slug
from .raster_export import ExportPlan, local_raster_path, plan_export
from .segment_task import SegmentTask
from .settings import Settings, remember_prompt
from .toolbar import RunInput, SayMapToolbar


class SegmentRunner(QObject):
    """Owns at most one run at a time; the toolbar shows its progress."""

    layer_added = pyqtSignal(object)  # QgsVectorLayer
    run_failed = pyqtSignal(str)
    run_cancelled = pyqtSignal()

    def __init__(
        self,
        iface: object,
        connection: EngineConnection,
        toolbar: SayMapToolbar,
        settings_provider: Callable[[], Settings],
        on_engine_failed: Callable[[str], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.iface = iface
        self.connection = connection
        self.toolbar = toolbar
        self._settings = settings_provider
        self._on_engine_failed = on_engine_failed
        self.task: SegmentTask | None = None
        self._connecting = False
        self._run_token = 0  # bumped on cancel so a late engine answer starts nothing

    @property
    def busy(self) -> bool:
        return self.task is not None or self._connecting

    def run(self, run_input: RunInput) -> None:
        if self.busy:
            self._message("A SayMap run is already going; cancel it or wait.", Qgis.Warning)
            return
        try:
            request, export = self.build_request(run_input, self._settings())
        except SayMapPluginError as exc:
            self._message(str(exc), Qgis.Warning)
            return
        self.toolbar.set_history(remember_prompt("; ".join(run_input.prompts)))
        self.toolbar.set_busy(True, "connecting to the engine")
        self._connecting = True
        self._run_token += 1
        token = self._run_token
        self.connection.ensure(
            lambda endpoint: self._start_task(token, endpoint, request, export),
            lambda message: self._engine_failed(token, message),
        )

    def build_request(
        self, run_input: RunInput, settings: Settings
    ) -> tuple[SegmentRequest, ExportPlan | None]:
        """The engine request for the toolbar's state (pure apart from reading the layers)."""
        layer = run_input.raster
        if layer is None or not layer.isValid():
            raise SayMapPluginError("Choose a raster layer in the SayMap toolbar first.")
        aoi = self._aoi(run_input)
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
        output = result_path(folder, run_input.prompts, datetime.now())
        raster_path = local_raster_path(layer)
        export = None
        if raster_path is None:
            export = self._export_plan(layer, aoi, settings, run_input)
            raster_path = export.path
        assume_crs = None
        if not layer.dataProvider().crs().isValid() and layer.crs().isValid():
            assume_crs = crs_string(layer.crs())  # the user set the CRS the file lacks
        request = SegmentRequest(
            raster=str(raster_path),
            prompts=run_input.prompts,
            output=str(output),
            device=settings.device or "auto",
            tile=settings.tile or None,
            overlap=settings.overlap or None,
            threshold=settings.threshold,
            aoi=aoi,
            assume_crs=assume_crs,
        )
        return request, export

    def _aoi(self, run_input: RunInput) -> Aoi | None:
        if run_input.area == AreaChoice.CANVAS_EXTENT:
            canvas = self.iface.mapCanvas()
            return bounds_aoi(canvas.extent(), canvas.mapSettings().destinationCrs())
        if run_input.area == AreaChoice.SELECTED_FEATURES:
            return selection_aoi(run_input.polygon_layer)
        return None

    def _export_plan(
        self, layer: QgsRasterLayer, aoi: Aoi | None, settings: Settings, run_input: RunInput
    ) -> ExportPlan:
        extent = None
        if aoi is not None:
            extent = aoi_extent_in(aoi, layer.crs(), QgsProject.instance())
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = settings.resolved_data_dir() / "exports" / f"{slug(layer.name())}_{stamp}.tif"
        return plan_export(layer, extent, settings.export_resolution, Path(path))

    def _start_task(
        self, token: int, endpoint: Endpoint, request: SegmentRequest, export: ExportPlan | None
    ) -> None:
        if token != self._run_token or not self._connecting:
            return  # cancelled while the engine was starting
        self._connecting = False
        task = SegmentTask(
            endpoint, request, self._done, self._failed, self._cancelled, export=export
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
            self._failed_message("The engine finished without a result file.")
            return
        try:
            layer = add_result_layer(
                Path(job.output), layer_name(request.prompts), QgsProject.instance()
            )
        except SayMapPluginError as exc:
            self._failed_message(str(exc))
            return
        count = (job.result or {}).get("n_features", layer.featureCount())
        self._message(f"“{layer.name()}”: {count} features in {job.output}", Qgis.Success)
        for warning in (job.result or {}).get("warnings") or ():  # e.g. an unknown class name
            self._message(str(warning), Qgis.Warning)
        self.layer_added.emit(layer)

    def _failed(self, message: str) -> None:
        self.task = None
        self._idle()
        self.connection.forget()
        self._failed_message(message)

    def _failed_message(self, message: str) -> None:
        self._message(message, Qgis.Critical)
        QgsMessageLog.logMessage(message, LOG_TAG, Qgis.Critical)
        self.run_failed.emit(message)

    def _cancelled(self) -> None:
        self.task = None
        self._connecting = False
        self._idle()
        self._message("SayMap run cancelled; no layer was added.", Qgis.Info)
        self.run_cancelled.emit()

    def _idle(self) -> None:
        self.toolbar.set_busy(False)

    def _message(self, text: str, level: int) -> None:
        self.iface.messageBar().pushMessage("SayMap", text, level=level, duration=8)
