"""Processing algorithm "Segment by text": raster, prompts, area, tile size, threshold,
output GeoPackage. It runs in Processing's worker thread, so it may wait on the engine.

The request comes from the toolbar's builder (request.py), and the loaded result gets the
toolbar's name, style and group (layers.py), so the two paths cannot drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import qgis.utils
from qgis.core import (
    Qgis,
    QgsMapLayer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .area import bounds_aoi
from .engine_blocking import ensure_engine
from .engine_client import EngineClient
from .errors import SayMapPluginError
from .jobs import follow_segment
from .layers import group_hidden, layer_name, place_result, style_result
from .messages import explain, plain
from .paths import HELP_URL
from .raster_export import local_raster_path, plan_export, write_export
from .request import join_prompts, segment_request, split_prompts
from .settings import load_settings


class SegmentByTextAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    PROMPTS = "PROMPTS"
    EXTENT = "EXTENT"
    TILE = "TILE"
    THRESHOLD = "THRESHOLD"
    GSD = "GSD"
    OVERWRITE = "OVERWRITE"
    OUTPUT = "OUTPUT"
    FEATURES = "FEATURES"

    def name(self) -> str:
        return "segmentbytext"

    def displayName(self) -> str:
        return "Segment by text"

    def group(self) -> str:
        return "Segmentation"

    def groupId(self) -> str:
        return "segmentation"

    def shortHelpString(self) -> str:
        return (
            "Segments what the prompt describes (“storage tanks”, “the long building beside "
            "the road”) in a raster with the local SayMap engine and writes polygons to a "
            "GeoPackage with the fields prompt, score, area_m2, model, run_id, created_at, "
            "source. Several prompts: one per line or separated by ';'."
        )

    def helpUrl(self) -> str:
        return HELP_URL

    def createInstance(self) -> SegmentByTextAlgorithm:
        return SegmentByTextAlgorithm()

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster"))
        self.addParameter(QgsProcessingParameterString(self.PROMPTS, "Prompt(s)", multiLine=True))
        self.addParameter(
            QgsProcessingParameterExtent(self.EXTENT, "Area (empty: whole raster)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.TILE, "Tile size in pixels (0: model default)", defaultValue=0, minValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD,
                "Threshold",
                QgsProcessingParameterNumber.Type.Double,
                defaultValue=0.5,
                minValue=0.01,
                maxValue=0.99,
            )
        )
        gsd = QgsProcessingParameterString(
            self.GSD, "Working resolution: auto, native, or metres per pixel", defaultValue="auto"
        )
        gsd.setHelp(
            "auto reads the raster at the ground resolution the model was trained at (its "
            "model card), which is what it recognises objects at; native keeps the raster's own."
        )
        self.addParameter(gsd)
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.OVERWRITE, "Replace the output file if it exists", defaultValue=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, "Output GeoPackage", fileFilter="GeoPackage (*.gpkg)"
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.FEATURES, "Number of features"))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("Choose a raster layer to segment.")
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not output.lower().endswith(".gpkg"):
            output += ".gpkg"
        settings = load_settings()
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        try:
            prompts = split_prompts(self.parameterAsString(parameters, self.PROMPTS, context))
            aoi = None
            if parameters.get(self.EXTENT):
                extent = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
                aoi = bounds_aoi(extent, layer.crs())
            raster = local_raster_path(layer)
            if raster is None:
                feedback.pushInfo("The layer is not a local file: exporting it to a GeoTIFF")
                target = Path(context.temporaryFolder()) / f"saymap_export_{id(self)}.tif"
                extent = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
                plan = plan_export(
                    layer, extent if aoi else None, settings.export_resolution, target
                )
                raster = write_export(plan, feedback)
            request = segment_request(
                layer,
                raster,
                prompts,
                output,
                settings,
                aoi=aoi,
                tile=self.parameterAsInt(parameters, self.TILE, context),
                threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
                gsd=parse_gsd(self.parameterAsString(parameters, self.GSD, context)),
                overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context),
            )
            feedback.pushInfo("Connecting to the SayMap engine")
            endpoint = ensure_engine(settings, feedback.isCanceled)
            feedback.pushInfo(f"Engine at {endpoint.base_url}; segmenting {join_prompts(prompts)}")
            job = follow_segment(
                EngineClient(endpoint),
                request,
                lambda j: feedback.setProgress(j.progress * 100.0),
                feedback.isCanceled,
            )
        except SayMapPluginError as exc:
            raise QgsProcessingException(explain(exc).text) from exc
        result = job.result or {}
        for warning in result.get("warnings") or ():
            feedback.reportError(plain(str(warning)), fatalError=False)
        n_features = result.get("n_features")
        feedback.pushInfo(f"{n_features} features written to {job.output or output}")
        project = context.project()
        if project is not None:
            model = str(result.get("model") or "")
            details = QgsProcessingContext.LayerDetails(
                layer_name(prompts, layer.name(), model), project, self.OUTPUT
            )
            styler = StyleResult(prompts, layer.name(), model, settings.score_labels)
            _STYLERS.append(styler)  # Processing holds only a pointer; this algorithm copy goes
            details.setPostProcessor(styler)
            context.addLayerToLoadOnCompletion(job.output or output, details)
        return {self.OUTPUT: job.output or output, self.FEATURES: n_features}


def parse_gsd(text: str) -> str | float:
    """'auto', 'native' or metres per pixel ('0.3', '0.3 m'); the engine refuses the rest."""
    value = (text or "auto").strip().lower().removesuffix("m").strip()
    if value in ("auto", "native"):
        return value
    try:
        return float(value)
    except ValueError:
        raise QgsProcessingException(
            f"Working resolution must be auto, native or metres per pixel (e.g. 0.3), not {text!r}."
        ) from None


# Post-processors waiting for their layer: Processing runs a copy of the algorithm that is
# deleted before the layer loads, and keeps only a C++ pointer to the post-processor.
_STYLERS: list[StyleResult] = []


class StyleResult(QgsProcessingLayerPostProcessorInterface):
    """The loaded result as the toolbar's: its name, style and place in the SayMap group."""

    def __init__(
        self, prompts: tuple[str, ...], raster: str, model: str, score_labels: bool
    ) -> None:
        super().__init__()
        self.name_parts = (prompts, raster, model)
        self.score_labels = score_labels

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        if self in _STYLERS:
            _STYLERS.remove(self)
        project = context.project()
        style_result(layer, self.score_labels)
        if project is None:
            return
        taken = {other.name() for other in project.mapLayers().values() if other.id() != layer.id()}
        layer.setName(layer_name(*self.name_parts, taken=taken))
        hidden = group_hidden(project)
        place_result(layer, project)
        if hidden:
            feedback.pushInfo("The “SayMap” group was hidden; it is shown again.")
            _tell(f"The “SayMap” group was hidden; it is shown again so that “{layer.name()}” "
                  "can be seen.")  # fmt: skip


def _tell(text: str) -> None:
    """A line in QGIS's message bar, when there is one (not in qgis_process)."""
    iface = getattr(qgis.utils, "iface", None)
    if iface is not None:
        iface.messageBar().pushMessage("SayMap", text, Qgis.MessageLevel.Info, 8)
