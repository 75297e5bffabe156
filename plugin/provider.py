"""SayMap's Processing provider, so "Segment by text" runs in the modeler and in batch."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .segment_algorithm import SegmentByTextAlgorithm

ICON = Path(__file__).resolve().parent / "icon.png"


class SayMapProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "saymap"

    def name(self) -> str:
        return "SayMap"

    def longName(self) -> str:
        return "SayMap: segment rasters from a sentence"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(SegmentByTextAlgorithm())
