"""The wizard's first three pages: Data, Sentences, Settings. Each only reads widgets and
checks them; the request is built from their values by `plan.build_request`."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateTransform,
    QgsFeature,
    QgsFieldProxyModel,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from . import plan

MODEL_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"


def local_path(layer: QgsVectorLayer | QgsRasterLayer) -> str | None:
    """The file a layer reads (the engine needs paths), or None for a non-file layer."""
    if layer.providerType() not in ("gdal", "ogr"):
        return None
    return layer.source().split("|")[0] or None


class DataPage(QWizardPage):
    """Rasters, the label layer, its class field; what will be handled, said up front."""

    def __init__(self, project: QgsProject) -> None:
        super().__init__()
        self.project = project
        self.setTitle("Data")
        self.setSubTitle("Rasters to learn from and a polygon layer whose class field names them.")
        self.rasters = QListWidget(self)
        self.labels = QgsMapLayerComboBox(self)
        self.labels.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.class_field = QgsFieldComboBox(self)
        self.class_field.setFilters(QgsFieldProxyModel.String)
        self.classes = QLabel(self)
        self.warnings = QLabel(self)
        self.warnings.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Raster layers", self.rasters)
        form.addRow("Label layer", self.labels)
        form.addRow("Class field", self.class_field)
        form.addRow("Classes", self.classes)
        form.addRow("Handled", self.warnings)
        self.labels.layerChanged.connect(self._labels_changed)
        self.class_field.fieldChanged.connect(self._refresh)
        self.rasters.itemChanged.connect(self._refresh)

    def initializePage(self) -> None:
        self.rasters.clear()
        for layer in self.project.mapLayers().values():
            if isinstance(layer, QgsRasterLayer):
                item = QListWidgetItem(layer.name(), self.rasters)
                item.setData(Qt.UserRole, layer.id())
                item.setCheckState(Qt.Checked if self.rasters.count() == 1 else Qt.Unchecked)
        self._labels_changed(self.labels.currentLayer())

    def raster_layers(self) -> list[QgsRasterLayer]:
        items = [self.rasters.item(k) for k in range(self.rasters.count())]
        ids = [i.data(Qt.UserRole) for i in items if i.checkState() == Qt.Checked]
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
        if isinstance(layer, QgsVectorLayer) and layer.fields().indexOf("class") >= 0:
            self.class_field.setField("class")
        self._refresh()

    def _refresh(self) -> None:
        counts = self.class_counts()
        self.classes.setText(", ".join(f"{k} ({v})" for k, v in counts.items()) or "—")
        self.warnings.setText("\n".join(self.notes()) or "nothing to adjust")
        self.completeChanged.emit()

    def notes(self) -> list[str]:
        """What the engine will handle: CRS differences, labels off the rasters, odd sizes."""
        layer, rasters = self.label_layer(), self.raster_layers()
        if layer is None or not rasters:
            return []
        out = []
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

    def isComplete(self) -> bool:
        return bool(self.raster_layers() and self.label_layer() and self.class_counts())

    def validatePage(self) -> bool:
        layers = [*self.raster_layers(), self.label_layer()]
        missing = [lyr.name() for lyr in layers if local_path(lyr) is None]
        if missing:
            self.warnings.setText(f"Not local files (the engine reads files): {', '.join(missing)}")
            return False
        return True


class SentencesPage(QWizardPage):
    """Full expressions tied to label features: picked on the map or read from a column."""

    COLUMNS = ("Sentence", "Class", "Feature")

    def __init__(self, data: DataPage) -> None:
        super().__init__()
        self.data = data
        self.setTitle("Sentences")
        self.setSubTitle(
            "Write a few full expressions (“the long building beside the road”), each tied "
            "to the features it describes. A few per class is enough."
        )
        self.table = QTableWidget(0, len(self.COLUMNS), self)
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 320)
        self.pick_button = QPushButton("Pick features on the map", self)
        self.pick_button.setCheckable(True)
        self.remove_button = QPushButton("Remove row", self)
        self.text_field = QgsFieldComboBox(self)
        self.text_field.setAllowEmptyFieldName(True)
        self.read_button = QPushButton("Read sentences from this column", self)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        buttons = QHBoxLayout()
        for widget in (self.pick_button, self.remove_button, self.text_field, self.read_button):
            buttons.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.summary)
        self.remove_button.clicked.connect(self._remove_row)
        self.read_button.clicked.connect(self.read_column)
        self.table.itemChanged.connect(self._refresh)

    def initializePage(self) -> None:
        self.text_field.setLayer(self.data.label_layer())
        self._refresh()

    def add_feature(self, feature: QgsFeature, sentence: str = "") -> int:
        """A row for a picked feature; the sentence cell is where the analyst types."""
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(sentence))
        klass = QTableWidgetItem(str(feature[self.data.class_field.currentField()]))
        where = QTableWidgetItem(f"#{feature.id()}")
        where.setData(Qt.UserRole, feature.geometry().asWkt())
        for item in (klass, where):
            item.setFlags(item.flags() & ~Qt.ItemIsEditable)
        self.table.setItem(row, 1, klass)
        self.table.setItem(row, 2, where)
        self._refresh()
        return row

    def read_column(self) -> int:
        """One row per feature whose text column holds a sentence; returns how many."""
        layer, field = self.data.label_layer(), self.text_field.currentField()
        if layer is None or not field:
            return 0
        n = 0
        for feature in layer.getFeatures():
            value = feature[field]
            if value is not None and str(value).strip() and str(value) != "NULL":
                self.add_feature(feature, str(value).strip())
                n += 1
        return n

    def _remove_row(self) -> None:
        if self.table.currentRow() >= 0:
            self.table.removeRow(self.table.currentRow())
            self._refresh()

    def sentences(self) -> list[tuple[str, str, str]]:
        """(sentence, class, WKT in the labels' CRS) for every row with a sentence."""
        out = []
        for row in range(self.table.rowCount()):
            text, klass, where = (self.table.item(row, c) for c in range(3))
            if text is not None and text.text().strip() and where is not None:
                out.append((text.text().strip(), klass.text(), where.data(Qt.UserRole)))
        return out

    def _refresh(self) -> None:
        full = plan.sentence_counts(k for _, k, _ in self.sentences())
        self.summary.setText("\n".join(plan.sentence_advice(self.data.class_counts(), full)))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return bool(self.sentences())


class SettingsPage(QWizardPage):
    """Base model, recipe, length, validation area or share, device, and what that costs."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Settings")
        self.setSubTitle("How to train, and roughly how long it takes.")
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("e.g. kampala-roofs")
        self.base_model = QComboBox(self)
        self.recipe = QComboBox(self)
        for choice in plan.RECIPES:
            self.recipe.addItem(choice.label)
        self.steps = QSpinBox(self)
        self.steps.setRange(1, 200_000)
        self.steps.setValue(1500)
        self.budget = QDoubleSpinBox(self)
        self.budget.setRange(0.1, 10_000)
        self.budget.setSuffix(" min")
        self.chip = QComboBox(self)
        for size in (128, 256, 480):
            self.chip.addItem(f"{size} px", size)
        self.chip.setCurrentIndex(1)
        self.validation_kind = QComboBox(self)
        for kind, label in plan.VALIDATION_KINDS:
            self.validation_kind.addItem(label, kind)
        self.validation = QDoubleSpinBox(self)
        self.validation.setRange(0.05, 0.5)
        self.validation.setSingleStep(0.05)
        self.validation.setValue(0.2)
        self.device = QComboBox(self)
        for device in ("auto", "cpu", "cuda", "mps"):
            self.device.addItem(device)
        self.device_type = "cpu"  # what 'auto' picks on the engine, set once it answers
        self.estimate = QLabel(self)
        form = QFormLayout(self)
        form.addRow("New model name", self.name)
        form.addRow("Base model", self.base_model)
        form.addRow("Recipe", self.recipe)
        form.addRow("Steps", self.steps)
        form.addRow("or a time budget", self.budget)
        form.addRow("Chip size", self.chip)
        form.addRow("Validate on", self.validation_kind)
        form.addRow("Validation share", self.validation)
        form.addRow("Device", self.device)
        form.addRow("Estimate", self.estimate)
        self.recipe_overrides: dict = {}  # recipe sections merged last (tests: a short run)
        self.steps.valueChanged.connect(self._steps_changed)
        self.budget.editingFinished.connect(self._budget_changed)
        self.device.currentIndexChanged.connect(self._steps_changed)
        self.name.textChanged.connect(self.completeChanged)
        self.validation_kind.currentIndexChanged.connect(
            lambda _: self.validation.setEnabled(self.validation_kind.currentData() != "canvas")
        )
        self._steps_changed()

    def set_models(self, names: list[str], active: str) -> None:
        self.base_model.clear()
        self.base_model.addItems(names)
        self.base_model.setCurrentText(active)

    def chosen_device_type(self) -> str:
        chosen = self.device.currentText()
        return self.device_type if chosen == "auto" else chosen

    def _steps_changed(self) -> None:
        seconds = plan.estimate_seconds(self.steps.value(), self.chosen_device_type())
        self.budget.blockSignals(True)
        self.budget.setValue(seconds / 60)
        self.budget.blockSignals(False)
        self.estimate.setText(
            f"{plan.describe_seconds(seconds)} on {self.chosen_device_type().upper()}"
        )

    def _budget_changed(self) -> None:
        self.steps.setValue(plan.steps_for_budget(self.budget.value(), self.chosen_device_type()))

    def recipe_dict(self) -> dict:
        choice = plan.RECIPES[self.recipe.currentIndex()]
        return plan.build_recipe(
            choice, self.steps.value(), self.chip.currentData(), self.recipe_overrides
        )

    def isComplete(self) -> bool:
        name = self.name.text()
        return bool(name) and name[0].isalnum() and all(c in MODEL_NAME_CHARS for c in name)
