"""The raster's ground resolution against the model card's range, checked before a run.

The engine reads every raster at the model's working resolution (its card's `gsd_m`) and
warns after the run when the raster's own is outside the card's `gsd_range_m`. Far outside
that range (a 30 m Landsat scene for a model made for 0.3 m roofs) the run is unlikely to be
what the user wants, so the toolbar asks first. Measured as the engine measures it: one
pixel's sides on the ellipsoid at the raster's centre.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qgis.core import QgsDistanceArea, QgsPointXY, QgsProject, QgsRasterLayer

# Ask before running when the raster is this many times finer or coarser than the range.
FAR_FACTOR = 2.0


@dataclass(frozen=True)
class CardRange:
    gsd_m: float | None
    low: float
    high: float

    @classmethod
    def from_card(cls, card: Mapping[str, Any] | None) -> CardRange | None:
        """The card's range (`gsd_range_m`), or None when it gives none."""
        card = card or {}
        span = card.get("gsd_range_m")
        try:
            low, high = (float(v) for v in span)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            return None
        if not 0 < low <= high:
            return None
        gsd = card.get("gsd_m")
        return cls(float(gsd) if isinstance(gsd, int | float) and gsd > 0 else None, low, high)


def ground_resolution_m(layer: QgsRasterLayer, project: QgsProject) -> float | None:
    """Metres on the ground per pixel at the layer's centre; None for a layer with no pixel
    size of its own (a web service) or no CRS to measure in."""
    crs = layer.crs()
    if not crs.isValid() or layer.width() <= 0 or layer.height() <= 0:
        return None
    size_x, size_y = layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()
    if not (size_x > 0 and size_y > 0):
        return None
    measure = QgsDistanceArea()
    measure.setSourceCrs(crs, project.transformContext())
    measure.setEllipsoid(crs.ellipsoidAcronym() or "EPSG:7030")
    if not measure.willUseEllipsoid():
        return None  # an engineering CRS: no metres on the ground (the engine says so too)
    centre = layer.extent().center()
    x, y = centre.x(), centre.y()
    try:
        along_row = measure.measureLine(QgsPointXY(x, y), QgsPointXY(x + size_x, y))
        along_col = measure.measureLine(QgsPointXY(x, y), QgsPointXY(x, y + size_y))
    except Exception:  # QGIS raises its own types for points it cannot project
        return None
    size = math.sqrt(abs(along_row) * abs(along_col))
    return size if math.isfinite(size) and size > 0 else None


def resolution_warning(
    layer: QgsRasterLayer, card: Mapping[str, Any] | None, project: QgsProject
) -> str | None:
    """A sentence for the message bar when the raster is far outside the card's range."""
    span = CardRange.from_card(card)
    native = ground_resolution_m(layer, project)
    if span is None or native is None:
        return None
    if span.low / FAR_FACTOR <= native <= span.high * FAR_FACTOR:
        return None
    working = f" and reads every raster at {span.gsd_m:g} m" if span.gsd_m else ""
    side = "coarser" if native > span.high else "finer"
    return (
        f"“{layer.name()}” is {native:.3g} m per pixel, far {side} than the "
        f"{span.low:g}–{span.high:g} m the active model is made for (it{working}); "
        "expect weak results."
    )
