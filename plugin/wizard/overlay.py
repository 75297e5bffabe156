"""The validation area and the sentences' features drawn on the map canvas while the wizard
is on its Sentences and Settings pages: the area hatched in red, each sentence's feature
outlined in the colour of what training will do with it."""

from __future__ import annotations

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsRectangle,
    QgsWkbTypes,
)
from qgis.gui import QgsMapCanvas, QgsRubberBand
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor

AREA_COLOR = QColor(214, 39, 40)
# What the engine's preview says of a sentence → its outline on the map.
FATE_COLORS = {
    "train": QColor(44, 160, 44),
    "validation": QColor(214, 39, 40),
    "edge": QColor(255, 127, 14),
    "held_out": QColor(148, 103, 189),
    "unused": QColor(127, 127, 127),
    None: QColor(127, 127, 127),  # not checked yet
}


def polygon_type() -> object:
    """The polygon geometry type: Qgis.GeometryType from QGIS 3.30 (and 4), QgsWkbTypes's
    before."""
    kind = getattr(Qgis, "GeometryType", None)
    if kind is not None and hasattr(kind, "Polygon"):
        return kind.Polygon
    return QgsWkbTypes.GeometryType.PolygonGeometry


class ValidationOverlay:
    """Rubber bands on one canvas; `clear()` removes them all."""

    def __init__(self, canvas: QgsMapCanvas) -> None:
        self.canvas = canvas
        self.area: QgsRubberBand | None = None
        self.area_crs: QgsCoordinateReferenceSystem | None = None
        self.area_bounds: tuple[float, float, float, float] | None = None
        self.sentences: list[tuple[QgsRubberBand, str | None]] = []

    def show(
        self,
        area: tuple[tuple[float, float, float, float], QgsCoordinateReferenceSystem] | None,
        sentences: list[tuple[str, QgsCoordinateReferenceSystem, str | None]],
    ) -> None:
        """Draw `area` (bounds, CRS; None: a share of features, nothing to draw) and each
        (WKT, CRS, fate) sentence feature."""
        self.clear()
        if area is not None:
            bounds, crs = area
            self.area = self._band(AREA_COLOR, 2, fill_alpha=50)
            self.area.setBrushStyle(Qt.BrushStyle.BDiagPattern)
            self.area.setToGeometry(QgsGeometry.fromRect(QgsRectangle(*bounds)), crs)
            self.area_bounds, self.area_crs = bounds, crs
        for wkt, crs, fate in sentences:
            geometry = QgsGeometry.fromWkt(wkt)
            if geometry.isNull():
                continue
            band = self._band(FATE_COLORS.get(fate, FATE_COLORS[None]), 3, fill_alpha=90)
            band.setToGeometry(geometry, crs)
            self.sentences.append((band, fate))

    def _band(self, color: QColor, width: int, fill_alpha: int) -> QgsRubberBand:
        band = QgsRubberBand(self.canvas, polygon_type())
        band.setStrokeColor(color)
        fill = QColor(color)
        fill.setAlpha(fill_alpha)
        band.setFillColor(fill)
        band.setWidth(width)
        band.show()
        return band

    def clear(self) -> None:
        bands = [b for b, _ in self.sentences] + ([self.area] if self.area is not None else [])
        for band in bands:
            band.reset(polygon_type())
            self.canvas.scene().removeItem(band)
        self.area, self.area_bounds, self.area_crs = None, None, None
        self.sentences = []
