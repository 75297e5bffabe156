"""Pick label features on the map for a sentence: click a feature, it is selected."""

from __future__ import annotations

from qgis.core import QgsFeature, QgsVectorLayer
from qgis.gui import QgsMapCanvas, QgsMapToolIdentifyFeature
from qgis.PyQt.QtCore import pyqtSignal


class FeaturePicker(QgsMapToolIdentifyFeature):
    """Clicking a feature of the label layer emits it (and selects it on the layer)."""

    picked = pyqtSignal(object)  # QgsFeature

    def __init__(self, canvas: QgsMapCanvas, layer: QgsVectorLayer) -> None:
        super().__init__(canvas, layer)
        self.layer = layer
        self.featureIdentified[QgsFeature].connect(self._identified)

    def _identified(self, feature: QgsFeature) -> None:
        self.layer.selectByIds([feature.id()])
        self.picked.emit(feature)
