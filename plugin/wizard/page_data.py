"""The wizard's Data page: the rasters to learn from, the polygon layer that labels them and
its class field. It exists so that what the engine will adjust or leave out (CRS differences,
labels off the rasters, odd sizes) is said before anything trains, and so that a SayMap
result is never chosen as labels for the user. Like every input page it only reads widgets
and checks them; the request is built from their values by `plan.build_request`."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCoordinateTransform,
    QgsFieldProxyModel,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QMetaType, Qt
from qgis.PyQt.QtWidgets import QFormLayout, QLabel, QListWidget, QListWidgetItem, QWizardPage

from ..layers import is_result_layer  # noqa: TID252 (the plugin folder name varies)
from . import plan
from .overlay import polygon_type
from .widgets import WHY_STYLE

# Field names that name a feature's class, most telling first (compared in lower case).
CLASS_FIELD_NAMES = (
    "class",
    "class_name",
    "classname",
    "label",
    "category",
    "type",
    "kind",
    "landuse",
    "landcover",
    "lulc",
    "building",
)
TEXT_TYPE = QMetaType.Type.QString


def local_path(layer: QgsVectorLayer | QgsRasterLayer) -> str | None:
    """The file a layer reads (the engine needs paths), or None for a non-file layer."""
    if layer.providerType() not in ("gdal", "ogr"):
        return None
    return layer.source().split("|")[0] or None


def class_like_field(layer: QgsVectorLayer) -> str | None:
    """The layer's text field that most looks like a class name, or None."""
    # QgsField.type() is a QVariant.Type under Qt 5 and a QMetaType.Type under Qt 6: the
    # string type has the same value (10) in both, and QMetaType.Type names it in both.
    text = {f.name().lower(): f.name() for f in layer.fields() if f.type() == TEXT_TYPE}
    return next((text[n] for n in CLASS_FIELD_NAMES if n in text), None)


def is_polygon_layer(layer: object) -> bool:
    return isinstance(layer, QgsVectorLayer) and layer.geometryType() == polygon_type()


def default_label_layer(project: QgsProject) -> QgsVectorLayer | None:
    """The first polygon layer (in the Layers panel's order) that has a class-like field and
    is not a SayMap result (training on the model's own output teaches it its mistakes)."""
    ordered = [node.layer() for node in project.layerTreeRoot().findLayers()]
    ordered += [lyr for lyr in project.mapLayers().values() if lyr not in ordered]
    for layer in ordered:
        if is_polygon_layer(layer) and not is_result_layer(layer) and class_like_field(layer):
            return layer
    return None


class DataPage(QWizardPage):
    """Rasters, the label layer, its class field; what will be handled, said up front."""

    def __init__(self, project: QgsProject, remembered: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.project = project
        self.remembered = remembered or {}
        self.setTitle("Data")
        self.setSubTitle("Rasters to learn from and a polygon layer whose class field names them.")
        self.rasters = QListWidget(self)
        self.rasters.setToolTip(
            "Tick the raster layers to learn from. They must be local files: the engine reads "
            "them itself."
        )
        self.labels = QgsMapLayerComboBox(self)
        self.labels.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.labels.setAllowEmptyLayer(True)
        self.labels.setToolTip(
            "The polygons to learn from: each one an object of its class. SayMap's own result "
            "layers are never chosen for you: training on them teaches the model its own "
            "mistakes."
        )
        self.class_field = QgsFieldComboBox(self)
        self.class_field.setFilters(QgsFieldProxyModel.Filter.String)
        self.class_field.setToolTip(
            "The text field that names each polygon's class (e.g. building); its values are "
            "the class names the model learns."
        )
        self.classes = QLabel(self)
        self.classes.setToolTip("The classes in the class field, with how many polygons each has.")
        self.warnings = QLabel(self)
        self.warnings.setWordWrap(True)
        self.warnings.setToolTip("What the engine will adjust or leave out, said before training.")
        self.why = QLabel(self)
        self.why.setWordWrap(True)
        self.why.setStyleSheet(WHY_STYLE)
        form = QFormLayout(self)
        form.addRow("Raster layers", self.rasters)
        form.addRow("Label layer", self.labels)
        form.addRow("Class field", self.class_field)
        form.addRow("Classes", self.classes)
        form.addRow("Handled", self.warnings)
        form.addRow("", self.why)
        self.initialized = False  # set once the page was shown (its choices are the user's)
        self.labels.layerChanged.connect(self._labels_changed)
        self.class_field.fieldChanged.connect(self._refresh)
        self.rasters.itemChanged.connect(self._refresh)

    def initializePage(self) -> None:
        remembered_rasters = set(self.remembered.get("rasters") or ())
        self.rasters.blockSignals(True)
        self.rasters.clear()
        for layer in self.project.mapLayers().values():
            if isinstance(layer, QgsRasterLayer):
                item = QListWidgetItem(layer.name(), self.rasters)
                item.setData(Qt.ItemDataRole.UserRole, layer.id())
                chosen = (
                    layer.id() in remembered_rasters
                    if remembered_rasters & set(self.project.mapLayers())
                    else self.rasters.count() == 1
                )
                item.setCheckState(Qt.CheckState.Checked if chosen else Qt.CheckState.Unchecked)
        self.rasters.blockSignals(False)
        remembered = self.project.mapLayer(self.remembered.get("labels") or "")
        if not is_polygon_layer(remembered) or is_result_layer(remembered):
            remembered = None  # a result chosen by hand last time is not a default either
        layer = remembered or default_label_layer(self.project)
        self.labels.setLayer(layer)
        self._labels_changed(self.labels.currentLayer())
        self.initialized = True

    def raster_layers(self) -> list[QgsRasterLayer]:
        items = [self.rasters.item(k) for k in range(self.rasters.count())]
        ids = [
            i.data(Qt.ItemDataRole.UserRole)
            for i in items
            if i.checkState() == Qt.CheckState.Checked
        ]
        return [self.project.mapLayer(i) for i in ids if self.project.mapLayer(i) is not None]

    def label_layer(self) -> QgsVectorLayer | None:
        layer = self.labels.currentLayer()
        return layer if isinstance(layer, QgsVectorLayer) else None

    def class_counts(self) -> dict[str, int]:
        layer, field = self.label_layer(), self.class_field.currentField()
        if layer is None or not field:
            return {}
        return plan.class_counts(f[field] for f in layer.getFeatures())

    def _labels_changed(self, layer: object) -> None:
        self.class_field.setLayer(layer if isinstance(layer, QgsVectorLayer) else None)
        if isinstance(layer, QgsVectorLayer):
            field = None
            if layer.id() == self.remembered.get("labels"):
                field = self.remembered.get("class_field")
            if not field or layer.fields().indexOf(field) < 0:
                field = class_like_field(layer)
            if field:
                self.class_field.setField(field)
        self._refresh()

    def _refresh(self) -> None:
        counts = self.class_counts()
        self.classes.setText(", ".join(f"{k} ({v})" for k, v in counts.items()) or "—")
        self.warnings.setText("\n".join(self.notes()) or "nothing to adjust")
        self.why.setText(self.reason() or "")
        self.completeChanged.emit()

    def notes(self) -> list[str]:
        """What the engine will handle: CRS differences, labels off the rasters, odd sizes."""
        layer, rasters = self.label_layer(), self.raster_layers()
        if layer is None or not rasters:
            return []
        out = []
        if is_result_layer(layer):
            out.append(
                f"{layer.name()} is a SayMap result: training on it teaches the model its own "
                "mistakes. Choose your own labels unless you corrected these."
            )
        for raster in rasters:
            if raster.crs() != layer.crs():
                out.append(
                    f"{raster.name()} is in {raster.crs().authid()}, the labels in "
                    f"{layer.crs().authid()}: the labels are reprojected."
                )
        outside = small = large = 0
        first = rasters[0]
        to_raster = QgsCoordinateTransform(layer.crs(), first.crs(), self.project)
        pixel = max(first.rasterUnitsPerPixelX(), 1e-12)
        extents = [
            QgsCoordinateTransform(r.crs(), first.crs(), self.project).transformBoundingBox(
                r.extent()
            )
            for r in rasters
        ]
        for feature in layer.getFeatures():
            box = to_raster.transformBoundingBox(feature.geometry().boundingBox())
            if not any(e.intersects(box) for e in extents):
                outside += 1
            side = max(box.width(), box.height()) / pixel
            small += side < plan.SMALL_FEATURE_PX
            large += side > 512
        if outside:
            out.append(f"{outside} labels lie outside the rasters and are left out.")
        if small:
            out.append(f"{small} features are under {plan.SMALL_FEATURE_PX} px across.")
        if large:
            out.append(f"{large} features are over 512 px across and are cut by the chips.")
        return out

    def reason(self) -> str | None:
        """Why Next is disabled, or None."""
        if not self.raster_layers():
            return "Tick at least one raster layer to learn from."
        if self.label_layer() is None:
            return (
                "Choose a polygon label layer with a class field (SayMap's own results are "
                "not chosen for you)."
            )
        if not self.class_field.currentField():
            return "Choose the text field that names each polygon's class."
        if not self.class_counts():
            return "The class field is empty in every polygon: choose another field."
        return None

    def isComplete(self) -> bool:
        return self.reason() is None

    def validatePage(self) -> bool:
        layers = [*self.raster_layers(), self.label_layer()]
        missing = [lyr.name() for lyr in layers if local_path(lyr) is None]
        if missing:
            self.warnings.setText(f"Not local files (the engine reads files): {', '.join(missing)}")
            return False
        return True

    def choices(self) -> dict[str, Any]:
        layer = self.label_layer()
        return {
            "rasters": [r.id() for r in self.raster_layers()],
            "labels": layer.id() if layer is not None else None,
            "class_field": self.class_field.currentField(),
        }
