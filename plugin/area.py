"""Turn the toolbar's area choice into the engine's AOI (bounds or WKT plus a CRS)."""

from __future__ import annotations

from enum import Enum

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)

from .engine_client import Aoi
from .errors import AreaError


class AreaChoice(Enum):
    WHOLE_LAYER = "whole"
    CANVAS_EXTENT = "canvas"
    SELECTED_FEATURES = "selection"


AREA_LABELS = {
    AreaChoice.WHOLE_LAYER: "Whole layer",
    AreaChoice.CANVAS_EXTENT: "Map canvas extent",
    AreaChoice.SELECTED_FEATURES: "Selected features",
}


def crs_string(crs: QgsCoordinateReferenceSystem) -> str:
    """An EPSG code where there is one, else the full WKT (custom CRSs have no code)."""
    authid = crs.authid()
    if authid and not authid.upper().startswith("USER:"):
        return authid
    return crs.toWkt(QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED)


def bounds_aoi(extent: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> Aoi:
    if extent.isEmpty():
        raise AreaError("The map canvas extent is empty; zoom to the area to segment.")
    bounds = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
    return Aoi(crs=crs_string(crs), bounds=bounds)


def selection_geometry(layer: QgsVectorLayer) -> QgsGeometry:
    """The union of the selected polygons; an AreaError says what to do when there are none."""
    geometries = [f.geometry() for f in layer.selectedFeatures() if f.hasGeometry()]
    if not geometries:
        raise AreaError(
            f"No features are selected in “{layer.name()}”: select the polygons to segment "
            "inside, or choose another area."
        )
    union = QgsGeometry.unaryUnion(geometries)
    if union.isNull() or union.isEmpty():
        raise AreaError(f"The selected features of “{layer.name()}” have no area.")
    return union


def selection_aoi(layer: QgsVectorLayer | None) -> Aoi:
    if layer is None:
        raise AreaError("Choose the polygon layer whose selected features bound the area.")
    return Aoi(crs=crs_string(layer.crs()), wkt=selection_geometry(layer).asWkt())


def aoi_extent_in(aoi: Aoi, crs: QgsCoordinateReferenceSystem, project: QgsProject) -> QgsRectangle:
    """The AOI's bounding box in another CRS (to export a non-file raster for that area)."""
    source = QgsCoordinateReferenceSystem(aoi.crs)
    if not source.isValid():
        source = QgsCoordinateReferenceSystem.fromWkt(aoi.crs)
    if aoi.wkt:
        rect = QgsGeometry.fromWkt(aoi.wkt).boundingBox()
    elif aoi.bounds is not None:
        rect = QgsRectangle(*aoi.bounds)
    else:
        raise AreaError("The area has neither bounds nor a geometry.")
    if source == crs:
        return rect
    transform = QgsCoordinateTransform(source, crs, project.transformContext())
    return transform.transformBoundingBox(rect)
