"""Write a raster layer that is not a local file (WMS/XYZ, a virtual raster) to a temporary
GeoTIFF for the chosen area, so the engine can read it by windows.

The plan is made on the GUI thread (it clones the provider); the writing runs in the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransformContext,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterBlockFeedback,
    QgsRasterDataProvider,
    QgsRasterFileWriter,
    QgsRasterLayer,
    QgsRasterPipe,
    QgsRectangle,
)

from .errors import RasterExportError

LOCAL_SUFFIXES = {".tif", ".tiff", ".gtiff", ".jp2", ".img", ".png", ".jpg", ".jpeg"}
MAX_EXPORT_PIXELS = 20000 * 20000


def local_raster_path(layer: QgsRasterLayer) -> Path | None:
    """The file behind a GDAL layer that the engine can read directly, else None."""
    if layer.providerType() != "gdal":
        return None
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = Path(parts.get("path") or "")
    if parts.get("layerName") or parts.get("vsiPrefix") or parts.get("vsiSuffix"):
        return None
    if path.suffix.lower() not in LOCAL_SUFFIXES or not path.is_file():
        return None
    return path


@dataclass
class ExportPlan:
    """What to write: a cloned provider (thread-safe copy), extent, size, CRS, where."""

    provider: QgsRasterDataProvider
    extent: QgsRectangle
    width: int
    height: int
    crs: QgsCoordinateReferenceSystem
    path: Path
    transform_context: QgsCoordinateTransformContext


def plan_export(
    layer: QgsRasterLayer, extent: QgsRectangle | None, resolution: float, path: Path
) -> ExportPlan:
    """Size the export: native resolution when the source has one, else `resolution`
    (map units per pixel in the layer's CRS). `extent` None means the layer's extent."""
    provider = layer.dataProvider()
    area = layer.extent() if extent is None else extent.intersect(layer.extent())
    if area.isEmpty():
        raise RasterExportError(f"The chosen area does not overlap “{layer.name()}”.")
    has_size = bool(provider.capabilities() & QgsRasterDataProvider.Capability.Size)
    if resolution <= 0 and has_size and provider.xSize() > 0:
        resolution_x = layer.extent().width() / provider.xSize()
        resolution_y = layer.extent().height() / provider.ySize()
    elif resolution > 0:
        resolution_x = resolution_y = resolution
    else:
        raise RasterExportError(
            f"“{layer.name()}” has no native resolution (a web service): set the export "
            "resolution in SayMap Settings, and choose the map canvas extent or a selection."
        )
    width = max(1, math.ceil(area.width() / resolution_x))
    height = max(1, math.ceil(area.height() / resolution_y))
    # grow the area to whole pixels so the resolution is exactly the one asked for
    area = QgsRectangle(
        area.xMinimum(),
        area.yMaximum() - height * resolution_y,
        area.xMinimum() + width * resolution_x,
        area.yMaximum(),
    )
    if width * height > MAX_EXPORT_PIXELS:
        raise RasterExportError(
            f"Exporting “{layer.name()}” for this area would make {width}×{height} pixels; "
            "choose a smaller area or a coarser export resolution in SayMap Settings."
        )
    context = QgsProject.instance().transformContext()
    return ExportPlan(provider.clone(), area, width, height, layer.crs(), path, context)


def write_export(plan: ExportPlan, feedback: QgsRasterBlockFeedback | None = None) -> Path:
    """Write the plan to a GeoTIFF (RGBA for rendered web layers); runs off the GUI thread."""
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    pipe = QgsRasterPipe()
    if not pipe.set(plan.provider):
        raise RasterExportError("Could not read the raster layer's data for export.")
    writer = QgsRasterFileWriter(str(plan.path))
    writer.setOutputFormat("GTiff")
    writer.setCreateOptions(["COMPRESS=DEFLATE", "TILED=YES"])
    error = writer.writeRaster(
        pipe,
        plan.width,
        plan.height,
        plan.extent,
        plan.crs,
        plan.transform_context,
        feedback,
    )
    if error != QgsRasterFileWriter.WriterError.NoError or not plan.path.is_file():
        raise RasterExportError(f"Exporting the raster to {plan.path} failed (code {error}).")
    return plan.path
