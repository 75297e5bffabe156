"""The wizard's first three pages: Data, Sentences, Settings. Each only reads widgets and
checks them; the request is built from their values by `plan.build_request`, and what it
would train on comes from the engine's preview (the wizard asks, the pages show it)."""

from __future__ import annotations

from typing import Any

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
from qgis.PyQt.QtCore import QMetaType, Qt, pyqtSignal
from qgis.PyQt.QtGui import QBrush, QColor
from qgis.PyQt.QtWidgets import (
    QCheckBox,
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

from ..engine_client import SentenceSuggestion  # noqa: TID252 (the plugin folder name varies)
from ..layers import is_result_layer  # noqa: TID252 (the plugin folder name varies)
from . import plan
from .overlay import polygon_type

MODEL_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
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
WHY_STYLE = "color: #b00020;"  # the reason Next is disabled, in a colour that reads as one
FATE_BACKGROUNDS = {
    "validation": QColor(250, 215, 215),
    "edge": QColor(255, 229, 200),
    "held_out": QColor(230, 220, 245),
    "unused": QColor(230, 230, 230),
}
TEXT_TYPE = QMetaType.Type.QString
# The picked feature's id, beside its WKT (a Qt 6 role is an enum member: take its value).
FEATURE_ID_ROLE = getattr(Qt.ItemDataRole.UserRole, "value", Qt.ItemDataRole.UserRole) + 1


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


class SentencesPage(QWizardPage):
    """Full expressions tied to label features: picked on the map or read from a column.
    Each row says what training will do with it (the engine's preview): train, or fall in
    the validation area, its edge or a hold-out; only sentences that train are counted."""

    COLUMNS = ("Sentence", "Class", "Feature", "Used as")
    preview_wanted = pyqtSignal()  # the sentences changed: the wizard asks the engine again
    move_validation_requested = pyqtSignal()
    suggestions_wanted = pyqtSignal()  # "Suggest sentences": the wizard asks the engine

    def __init__(self, data: DataPage) -> None:
        super().__init__()
        self.data = data
        self.setTitle("Sentences")
        self.setSubTitle(
            "A few full expressions per class (“the long building beside the road”), each "
            "tied to the features it describes, outside the validation area (red on the map)."
        )
        self.table = QTableWidget(0, len(self.COLUMNS), self)
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 300)
        self.table.setToolTip(
            "Type a sentence in the first column of each picked feature's row. The last "
            "column says whether it trains; hover over it for why not."
        )
        self.pick_button = QPushButton("Pick features on the map", self)
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip(
            "Click label features on the map: each click adds a row for a sentence about it."
        )
        self.remove_button = QPushButton("Remove row", self)
        self.remove_button.setToolTip("Remove the selected row.")
        self.text_field = QgsFieldComboBox(self)
        self.text_field.setAllowEmptyFieldName(True)
        self.text_field.setToolTip("A field of the label layer that holds a sentence per feature.")
        self.read_button = QPushButton("Read sentences from this column", self)
        self.read_button.setToolTip("Add a row for every feature whose chosen field has text.")
        self.suggest_button = QPushButton("Suggest sentences", self)
        self.suggest_button.setToolTip(
            "Ask the engine for sentences computed from your label polygons (“the largest "
            "building”, “the building left of the pool”): each names one feature alone on the "
            "chip training cuts around it, for the current chip size and base model. Keep, "
            "edit or remove the rows it adds."
        )
        self.suggest_note = QLabel(self)
        self.suggest_note.setWordWrap(True)
        self.validation_note = QLabel(self)
        self.validation_note.setWordWrap(True)
        self.move_button = QPushButton("Move the validation area away from the sentences", self)
        self.move_button.setToolTip(
            "Try the strip on each side of the labels' extent and keep the one that leaves "
            "the most sentences to train on."
        )
        self.move_button.setVisible(False)
        self.naive = QCheckBox("Train on class names alone (naive WREL)", self)
        self.naive.setToolTip(plan.NAIVE_WREL_NOTE)
        self.naive_note = QLabel(plan.NAIVE_WREL_NOTE, self)
        self.naive_note.setWordWrap(True)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.why = QLabel(self)
        self.why.setWordWrap(True)
        self.why.setStyleSheet(WHY_STYLE)
        buttons = QHBoxLayout()
        for widget in (
            self.pick_button,
            self.remove_button,
            self.text_field,
            self.read_button,
            self.suggest_button,
        ):
            buttons.addWidget(widget)
        validation = QHBoxLayout()
        validation.addWidget(self.validation_note, 1)
        validation.addWidget(self.move_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.suggest_note)
        layout.addLayout(validation)
        layout.addWidget(self.summary)
        layout.addWidget(self.naive)
        layout.addWidget(self.naive_note)
        layout.addWidget(self.why)
        self.preview: plan.TrainPreview | None = None
        self.preview_error: str | None = None
        self.preview_missing = False  # an engine without POST /v1/train/preview
        self.checking = False
        self.remove_button.clicked.connect(self._remove_row)
        self.read_button.clicked.connect(self.read_column)
        self.suggest_button.clicked.connect(self._suggest)
        self.table.itemChanged.connect(self._edited)
        self.naive.toggled.connect(self._edited)
        self.move_button.clicked.connect(self.move_validation_requested)
        self._show_naive_offer(False)

    def initializePage(self) -> None:
        self.text_field.setLayer(self.data.label_layer())
        self._edited()

    def add_feature(self, feature: QgsFeature, sentence: str = "") -> int:
        """A row for a picked feature; the sentence cell is where the analyst types."""
        klass = str(feature[self.data.class_field.currentField()])
        return self.add_row(sentence, klass, feature.id(), feature.geometry().asWkt())

    def add_row(self, sentence: str, klass: str, fid: int, wkt: str) -> int:
        self.table.blockSignals(True)
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(sentence))
        where = QTableWidgetItem(f"#{fid}")
        where.setData(Qt.ItemDataRole.UserRole, wkt)
        where.setData(FEATURE_ID_ROLE, int(fid))
        used = QTableWidgetItem("…")
        for column, item in ((1, QTableWidgetItem(klass)), (2, where), (3, used)):
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(row, column, item)
        self.table.blockSignals(False)
        self._edited()
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

    # -- sentences the engine suggests -----------------------------------------------------
    def _suggest(self) -> None:
        self.suggest_button.setEnabled(False)  # until the engine answered
        self.suggest_note.setText("Asking the engine for sentences about your features…")
        self.suggestions_wanted.emit()

    def feature_ids(self) -> set[int]:
        """The features that have a row already."""
        items = (self.table.item(row, 2) for row in range(self.table.rowCount()))
        return {int(i.data(FEATURE_ID_ROLE)) for i in items if i is not None}

    def add_suggestions(self, suggestions: list[SentenceSuggestion] | None) -> int:
        """A row per suggestion about a feature without one; returns how many were added.
        None: the engine has no POST /v1/train/suggest."""
        self.suggest_button.setEnabled(True)
        if suggestions is None:
            self.suggest_note.setText("This engine cannot suggest sentences (update it).")
            return 0
        have, added = self.feature_ids(), 0
        for s in suggestions:
            if s.feature_id not in have:
                self.add_row(s.sentence, s.class_name, s.feature_id, s.wkt)
                have.add(s.feature_id)
                added += 1
        self.suggest_note.setText(
            f"{added} suggested sentence{'s' if added != 1 else ''} added: keep, edit or "
            "remove them."
            if added
            else "No sentence could be suggested: on the chip where each feature would train, "
            "none is told apart from its neighbours. Type your own."
        )
        return added

    def suggestions_failed(self, message: str) -> None:
        self.suggest_button.setEnabled(True)
        self.suggest_note.setText(f"The engine could not suggest sentences: {message}")

    def _remove_row(self) -> None:
        if self.table.currentRow() >= 0:
            self.table.removeRow(self.table.currentRow())
            self._edited()

    def sentence_rows(self) -> list[int]:
        """The rows with a sentence: the request's sentences, in order."""
        rows = []
        for row in range(self.table.rowCount()):
            text, where = self.table.item(row, 0), self.table.item(row, 2)
            if text is not None and text.text().strip() and where is not None:
                rows.append(row)
        return rows

    def sentences(self) -> list[tuple[str, str, str]]:
        """(sentence, class, WKT in the labels' CRS) for every row with a sentence."""
        return [
            (
                self.table.item(row, 0).text().strip(),
                self.table.item(row, 1).text(),
                self.table.item(row, 2).data(Qt.ItemDataRole.UserRole),
            )
            for row in self.sentence_rows()
        ]

    def _edited(self, *_args: object) -> None:
        """A sentence or the naive choice changed: what trains must be asked again."""
        self.checking = True
        self._refresh()
        self.preview_wanted.emit()

    # -- the engine's preview ------------------------------------------------------------
    def show_checking(self) -> None:
        self.checking = True
        self._refresh()

    def show_preview(self, preview: plan.TrainPreview | None, error: str | None = None) -> None:
        """The engine's answer for the current sentences (None with no error: the engine
        cannot preview, so nothing is checked)."""
        self.checking = False
        self.preview, self.preview_error = preview, error
        self.preview_missing = preview is None and error is None
        rows = self.sentence_rows()
        fates = dict(zip(rows, preview.fates, strict=False)) if preview is not None else {}
        self.table.blockSignals(True)  # marking rows is no edit: nothing to ask again
        for row in range(self.table.rowCount()):
            fate = fates.get(row, (None, None))[0]
            word, tip = plan.FATES.get(fate, ("", ""))
            if row not in rows:
                word, tip = "", "Type a sentence for this feature, or remove the row."
            elif preview is None:
                word, tip = "?", "The engine could not say whether this sentence trains."
            item = self.table.item(row, 3)
            item.setText(word)
            item.setData(Qt.ItemDataRole.UserRole, fate)
            background = FATE_BACKGROUNDS.get(fate)
            for column in range(len(self.COLUMNS)):
                cell = self.table.item(row, column)
                if cell is not None:
                    cell.setToolTip(tip)
                    cell.setBackground(QBrush(background) if background else QBrush())
        self.table.blockSignals(False)
        self._refresh()

    def row_fate(self, row: int) -> str | None:
        item = self.table.item(row, 3)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def set_validation_note(self, text: str, movable: bool) -> None:
        self.validation_note.setText(text)
        self.validation_note.setToolTip(
            "Chips inside the validation area measure the model; chips that touch it never "
            "train it. Change it on the Settings page, or move it here."
        )
        self.move_button.setVisible(movable)

    def _show_naive_offer(self, offered: bool) -> None:
        self.naive.setVisible(offered)
        self.naive_note.setVisible(offered)

    def _refresh(self) -> None:
        full = plan.sentence_counts(k for _, k, _ in self.sentences())
        preview = None if self.checking else self.preview
        usable = preview.usable() if preview is not None else None
        lines = plan.sentence_advice(self.data.class_counts(), full, usable)
        if self.checking and self.sentences():
            lines.append("Checking with the engine which sentences can train…")
        elif self.preview_missing:
            lines.append(
                "This engine cannot say which sentences fall in the validation area (update "
                "it); sentences inside the red area on the map will not train."
            )
        if not self.checking:  # while asking, the offer stays as it was (no flicker)
            self._show_naive_offer(self._offer_naive())
        if preview is not None:
            blocked = sum(1 for f, _ in preview.fates if f in ("validation", "edge", "held_out"))
            self.move_button.setEnabled(blocked > 0)
        self.summary.setText("\n".join(lines))
        self.why.setText(self.reason() or "")
        self.completeChanged.emit()

    def _offer_naive(self) -> bool:
        """Naive WREL is offered when no sentence can train (none written, or all of them in
        the validation area or a hold-out)."""
        if not self.sentences():
            return True
        if self.preview is None:
            return False
        return not any(f == "train" for f, _ in self.preview.fates)

    def method(self) -> str | None:
        """The WREL method the recipe asks for: naive WREL when chosen, else the preset's."""
        return "naive-wrel" if self.naive.isChecked() and self._offer_naive() else None

    def reason(self) -> str | None:
        """Why Next is disabled, or None."""
        naive, n = self.method() is not None, len(self.sentences())
        if n == 0 and not naive:
            return plan.sentence_problem(None, 0, False)
        if self.checking:
            return "Checking with the engine which sentences can train…"
        if self.preview_error:
            return f"The engine cannot use this training data: {self.preview_error}"
        preview = None if self.preview_missing else self.preview
        return plan.sentence_problem(preview, n, naive)

    def isComplete(self) -> bool:
        return self.reason() is None

    def validatePage(self) -> bool:
        return self.isComplete()  # QWizard.next() from code skips the disabled button

    def choices(self) -> dict[str, Any]:
        rows = []
        for row in range(self.table.rowCount()):
            text, klass, where = (self.table.item(row, c) for c in range(3))
            rows.append(
                [
                    text.text() if text is not None else "",
                    klass.text(),
                    where.data(FEATURE_ID_ROLE),
                    where.data(Qt.ItemDataRole.UserRole),
                ]
            )
        return {"sentences": rows, "naive": self.naive.isChecked()}

    def restore(self, choices: dict[str, Any]) -> None:
        """Rows remembered for this project (only for the same label layer)."""
        if self.table.rowCount():
            return
        for row in choices.get("sentences") or ():
            if isinstance(row, list) and len(row) == 4 and row[3]:
                self.add_row(str(row[0]), str(row[1]), int(row[2] or 0), str(row[3]))
        self.naive.setChecked(bool(choices.get("naive")))


class SettingsPage(QWizardPage):
    """Base model, recipe, length, validation area or share, device, and what that costs."""

    preview_wanted = pyqtSignal()  # a choice that changes what trains

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Settings")
        self.setSubTitle("How to train, and roughly how long it takes.")
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("e.g. kampala-roofs")
        self.name.setToolTip(
            "The new model's name: letters, digits, _ . and -, starting with a letter or digit, "
            "not the name of a model the engine already has."
        )
        self.base_model = QComboBox(self)
        self.base_model.setToolTip(
            "The model training starts from (the toolbar's model is chosen for you). Its "
            "working resolution is kept."
        )
        self.recipe = QComboBox(self)
        for choice in plan.RECIPES:
            self.recipe.addItem(choice.label)
        self.recipe.setToolTip(
            "Quick (CPU): small batches for a laptop. Full (GPU): larger batches and more "
            "validation chips."
        )
        self.steps = QSpinBox(self)
        self.steps.setRange(1, 200_000)
        self.steps.setValue(1500)
        self.steps.setToolTip("Training steps: more steps learn more and take longer.")
        self.budget = QDoubleSpinBox(self)
        self.budget.setRange(0.1, 10_000)
        self.budget.setSuffix(" min")
        self.budget.setToolTip("Or give the time you can spare: the steps that fit it are set.")
        self.chip = QComboBox(self)
        for size in (128, 256, 480):
            self.chip.addItem(f"{size} px", size)
        self.chip.setCurrentIndex(1)
        self.chip.setToolTip(
            "The side of the square image chips cut around each feature, in working pixels. "
            "Larger chips see more context and need more memory."
        )
        self.validation_kind = QComboBox(self)
        for kind, label in plan.VALIDATION_KINDS:
            self.validation_kind.addItem(label, kind)
        self.validation_kind.setToolTip(
            "What measures the model: an area (no chip in both sets) or a share of the "
            "features (quicker, but neighbouring chips may share pixels)."
        )
        self.validation_side = QComboBox(self)
        for side, label in plan.VALIDATION_SIDES:
            self.validation_side.addItem(label, side)
        self.validation_side.setToolTip(
            "Which side of the labels' extent the validation strip lies on. Sentences inside "
            "it do not train."
        )
        self.validation = QDoubleSpinBox(self)
        self.validation.setRange(0.05, 0.5)
        self.validation.setSingleStep(0.05)
        self.validation.setValue(0.2)
        self.validation.setToolTip(
            "The share of the labels' extent (a strip) or of the features held out to validate."
        )
        self.device = QComboBox(self)
        for device in ("auto", "cpu", "cuda", "mps"):
            self.device.addItem(device)
        self.device.setToolTip("Where the engine trains: auto picks its GPU when it has one.")
        self.device_type = "cpu"  # what 'auto' picks on the engine, set once it answers
        self.estimate = QLabel(self)
        self.estimate.setToolTip("A rough time for the chosen steps on the chosen device.")
        self.split = QLabel(self)
        self.split.setWordWrap(True)
        self.split.setToolTip(
            "What the engine will train and validate on, from the same split training uses."
        )
        self.why = QLabel(self)
        self.why.setWordWrap(True)
        self.why.setStyleSheet(WHY_STYLE)
        form = QFormLayout(self)
        form.addRow("New model name", self.name)
        form.addRow("Base model", self.base_model)
        form.addRow("Recipe", self.recipe)
        form.addRow("Steps", self.steps)
        form.addRow("or a time budget", self.budget)
        form.addRow("Chip size", self.chip)
        form.addRow("Validate on", self.validation_kind)
        form.addRow("Validation strip", self.validation_side)
        form.addRow("Validation share", self.validation)
        form.addRow("Device", self.device)
        form.addRow("Estimate", self.estimate)
        form.addRow("Split", self.split)
        form.addRow("", self.why)
        self.recipe_overrides: dict = {}  # recipe sections merged last (tests: a short run)
        self.method: str | None = None  # the WREL method the Sentences page chose
        self.taken_names: set[str] = set()  # models the engine has: a new name must differ
        self.own_names: set[str] = set()  # models this wizard trained (Back, Next shows them)
        self.models_known = False
        self.preview: plan.TrainPreview | None = None
        self.preview_error: str | None = None
        self.checking = False
        self.steps.valueChanged.connect(self._steps_changed)
        self.budget.editingFinished.connect(self._budget_changed)
        self.device.currentIndexChanged.connect(self._steps_changed)
        self.name.textChanged.connect(self._refresh)
        self.validation_kind.currentIndexChanged.connect(self._kind_changed)
        for combo in (self.validation_side, self.chip, self.recipe, self.base_model):
            combo.currentIndexChanged.connect(self._split_changed)
        self.validation.valueChanged.connect(self._split_changed)
        self._steps_changed()
        self._kind_changed()

    def set_models(self, names: list[str], active: str, chosen: str | None = None) -> None:
        self.base_model.blockSignals(True)
        self.base_model.clear()
        self.base_model.addItems(names)
        self.base_model.setCurrentText(chosen if chosen in names else active)
        self.base_model.blockSignals(False)
        self.taken_names = set(names)
        self.models_known = True
        self._split_changed()

    def chosen_device_type(self) -> str:
        chosen = self.device.currentText()
        return self.device_type if chosen == "auto" else chosen

    def _kind_changed(self, *_args: object) -> None:
        kind = self.validation_kind.currentData()
        self.validation.setEnabled(kind != "canvas")
        self.validation_side.setEnabled(kind == "strip")
        self._split_changed()

    def set_validation(self, kind: str, side: str) -> None:
        """Choose the validation kind and strip side at once (one new preview, not two)."""
        for combo, value in ((self.validation_kind, kind), (self.validation_side, side)):
            combo.blockSignals(True)
            _select(combo, combo.findData(value))
            combo.blockSignals(False)
        self._kind_changed()

    def _split_changed(self, *_args: object) -> None:
        self.checking = True
        self._refresh()
        self.preview_wanted.emit()

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
            choice, self.steps.value(), self.chip.currentData(), self.recipe_overrides, self.method
        )

    def show_checking(self) -> None:
        self.checking = True
        self._refresh()

    def show_preview(self, preview: plan.TrainPreview | None, error: str | None = None) -> None:
        self.checking = False
        self.preview, self.preview_error = preview, error
        if preview is not None:
            self.split.setText(preview.split_summary())
        elif error is None:
            self.split.setText("this engine cannot preview the split (update it)")
        else:
            self.split.setText("—")
        self._refresh()

    def _refresh(self, *_args: object) -> None:
        self.why.setText(self.reason() or "")
        self.completeChanged.emit()

    def name_problem(self) -> str | None:
        name = self.name.text()
        if not name:
            return "Type a name for the new model."
        if not name[0].isalnum() or any(c not in MODEL_NAME_CHARS for c in name):
            return (
                f"{name!r} cannot be a model name: start with a letter or digit and use only "
                "letters, digits, _ . and -."
            )
        if len(name) > 64:
            return "A model name has at most 64 characters."
        if name in self.taken_names and name not in self.own_names:
            return f"The engine already has a model named {name!r}: choose another name."
        return None

    def reason(self) -> str | None:
        """Why Next is disabled, or None."""
        problem = self.name_problem()
        if problem:
            return problem
        if not self.models_known:
            return "Waiting for the engine's list of models…"
        if self.checking:
            return "Checking with the engine what this would train on…"
        if self.preview_error:
            return f"The engine cannot use this training data: {self.preview_error}"
        if self.preview is not None and self.preview.problem:
            return f"Training would fail: {self.preview.problem}"
        return None

    def isComplete(self) -> bool:
        return self.reason() is None

    def validatePage(self) -> bool:
        return self.isComplete()  # QWizard.next() from code skips the disabled button

    def choices(self) -> dict[str, Any]:
        return {
            "name": self.name.text(),
            "base_model": self.base_model.currentText(),
            "recipe": self.recipe.currentText(),
            "steps": self.steps.value(),
            "chip": self.chip.currentData(),
            "validation_kind": self.validation_kind.currentData(),
            "validation_side": self.validation_side.currentData(),
            "validation_share": self.validation.value(),
            "device": self.device.currentText(),
        }

    def restore(self, choices: dict[str, Any]) -> None:
        """The choices remembered for this project (the base model once the engine lists
        its models)."""
        self.name.setText(str(choices.get("name") or ""))
        _select(self.recipe, self.recipe.findText(str(choices.get("recipe", ""))))
        if isinstance(choices.get("steps"), int):
            self.steps.setValue(choices["steps"])
        _select(self.chip, self.chip.findData(choices.get("chip")))
        _select(self.validation_kind, self.validation_kind.findData(choices.get("validation_kind")))
        _select(self.validation_side, self.validation_side.findData(choices.get("validation_side")))
        if isinstance(choices.get("validation_share"), int | float):
            self.validation.setValue(float(choices["validation_share"]))
        _select(self.device, self.device.findText(str(choices.get("device", ""))))


def _select(combo: QComboBox, index: int) -> None:
    if index >= 0:
        combo.setCurrentIndex(index)
