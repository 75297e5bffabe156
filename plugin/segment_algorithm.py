"""Processing algorithm "Segment by text": raster, prompts, area, tile size, threshold,
output GeoPackage. It runs in Processing's worker thread, so it may wait on the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
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
from .engine_client import EngineClient, SegmentRequest
from .errors import SayMapPluginError
from .jobs import run_segment
from .layers import STYLE_PATH
from .raster_export import local_raster_path, plan_export, write_export
from .settings import load_settings
from .toolbar import parse_prompts


def split_prompts(text: str) -> tuple[str, ...]:
    """Prompts one per line or separated by ';' (batch mode passes one string)."""
    return parse_prompts(text.replace("\r", "").replace("\n", ";"))


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
                QgsProcessingParameterNumber.Double,
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
            request = SegmentRequest(
                raster=str(raster),
                prompts=prompts,
                output=output,
                overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context),
                device=settings.device or "auto",
                tile=self.parameterAsInt(parameters, self.TILE, context) or None,
                overlap=settings.overlap or None,
                threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
                aoi=aoi,
                gsd=parse_gsd(self.parameterAsString(parameters, self.GSD, context)),
            )
            feedback.pushInfo("Connecting to the SayMap engine")
            endpoint = ensure_engine(settings, feedback.isCanceled)
            feedback.pushInfo(f"Engine at {endpoint.base_url}; segmenting {', '.join(prompts)}")
            job = run_segment(
                EngineClient(endpoint),
                request,
                lambda j: feedback.setProgress(j.progress * 100.0),
                feedback.isCanceled,
            )
        except SayMapPluginError as exc:
            raise QgsProcessingException(str(exc)) from exc
        for warning in (job.result or {}).get("warnings") or ():
            feedback.reportError(str(warning), fatalError=False)
        n_features = (job.result or {}).get("n_features")
        feedback.pushInfo(f"{n_features} features written to {job.output or output}")
        if context.project() is not None:
            details = QgsProcessingContext.LayerDetails(
                "; ".join(prompts), context.project(), self.OUTPUT
            )
            self._styler = StyleResult()  # Processing keeps no reference of its own
            details.setPostProcessor(self._styler)
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


class StyleResult(QgsProcessingLayerPostProcessorInterface):
    """Give the loaded result the same shipped style as the toolbar's layers."""

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        layer.loadNamedStyle(str(STYLE_PATH))
