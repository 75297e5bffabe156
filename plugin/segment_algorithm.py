"""Processing algorithm "Segment by text": raster(s), prompts, area, tile size, threshold,
output GeoPackage. It runs in Processing's worker thread, so it may wait on the engine.

Rasters: INPUT (one raster layer, the parameter saved models and scripts already set) and
INPUTS (several raster layers); both are optional, together they must name at least one.
Keeping INPUT as it was keeps every saved model and script valid (a model's raster input
stays wired to a raster parameter of the same type); several rasters run as ONE engine job
(a collection: one model load, one GeoPackage, one layer per prompt).

The request comes from the toolbar's builder (request.py), and the loaded result gets the
toolbar's name, style and group (layers.py), so the two paths cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import qgis.utils
from qgis.core import (
    Qgis,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from .area import bounds_aoi
from .engine_blocking import ensure_engine
from .engine_client import EngineClient, JobInfo
from .errors import SayMapPluginError
from .jobs import follow_segment
from .layers import group_hidden, layer_name, place_result, rasters_label, style_result
from .messages import explain, plain
from .paths import HELP_URL
from .raster_export import local_raster_path, plan_export, write_export
from .request import join_prompts, segment_request, split_prompts
from .settings import load_settings


class SegmentByTextAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    INPUTS = "INPUTS"
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
            "source. Several prompts: one per line or separated by ';'. Several rasters "
            "(Rasters): one job, the model loaded once, objects across the edge between "
            "two rasters as one polygon, one layer per prompt; `source` names each "
            "polygon's raster."
        )

    def helpUrl(self) -> str:
        return HELP_URL

    def createInstance(self) -> SegmentByTextAlgorithm:
        return SegmentByTextAlgorithm()

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster", optional=True))
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.INPUTS,
                "Rasters (several: one job)",
                QgsProcessing.SourceType.TypeRaster,
                optional=True,
            )
        )
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
        rasters = self.raster_layers(parameters, context)
        layer = rasters[0]  # the area is read in its CRS
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
            files = []
            for index, each in enumerate(rasters):
                raster = local_raster_path(each)
                if raster is None:
                    feedback.pushInfo(
                        f"“{each.name()}” is not a local file: exporting it to a GeoTIFF"
                    )
                    name = f"saymap_export_{id(self)}_{index}.tif"
                    target = Path(context.temporaryFolder()) / name
                    extent = self.parameterAsExtent(parameters, self.EXTENT, context, each.crs())
                    plan = plan_export(
                        each, extent if aoi else None, settings.export_resolution, target
                    )
                    raster = write_export(plan, feedback)
                files.append(raster)
            request = segment_request(
                rasters,
                files,
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
                EngineClient(endpoint), request, _progress_to(feedback), feedback.isCanceled
            )
        except SayMapPluginError as exc:
            raise QgsProcessingException(explain(exc).text) from exc
        result = job.result or {}
        for warning in result.get("warnings") or ():
            feedback.reportError(plain(str(warning)), fatalError=False)
        n_features = result.get("n_features")
        written = job.output or output
        feedback.pushInfo(f"{n_features} features written to {written}")
        project = context.project()
        if project is not None:
            model = str(result.get("model") or "")
            label = rasters_label([each.name() for each in rasters])
            tables = job.result_layers(prompts)
            for table, held in tables.items():  # one layer per prompt (a single raster: one)
                uri = written if len(tables) == 1 else f"{written}|layername={table}"
                details = QgsProcessingContext.LayerDetails(
                    layer_name(held, label, model), project, self.OUTPUT
                )
                styler = StyleResult(held, label, model, settings.score_labels)
                _STYLERS.append(styler)  # Processing holds only a pointer; this copy goes
                details.setPostProcessor(styler)
                context.addLayerToLoadOnCompletion(uri, details)
        return {self.OUTPUT: written, self.FEATURES: n_features}

    def raster_layers(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> list[QgsRasterLayer]:
        """INPUT's raster, then INPUTS' (each layer once): at least one."""
        found: list[QgsRasterLayer] = []
        single = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if single is not None:
            found.append(single)
        for each in self.parameterAsLayerList(parameters, self.INPUTS, context) or ():
            if isinstance(each, QgsRasterLayer) and all(each.id() != f.id() for f in found):
                found.append(each)
        if not found:
            raise QgsProcessingException("Choose a raster layer to segment (Raster or Rasters).")
        return found


def _progress_to(feedback: QgsProcessingFeedback) -> Callable[[JobInfo], None]:
    """The job's overall progress on Processing's bar, and the engine's words for where it
    is (a collection: "raster 3 of 16 (tile_03.tif): 40 of 96 tiles") as its text."""
    said = [""]

    def show(job: JobInfo) -> None:
        feedback.setProgress(job.progress * 100.0)
        if job.message and job.message != said[0]:
            said[0] = job.message
            feedback.setProgressText(job.message)

    return show


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
