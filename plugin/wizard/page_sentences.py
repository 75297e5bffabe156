"""The wizard's Sentences page: full expressions tied to label features, picked on the map,
read from a column or suggested by the engine. It exists because a sentence only teaches the
model when it trains: each row shows what the engine's preview says training will do with it
(train, or fall in the validation area, its edge or a hold-out), and naive WREL is offered
when none can. The page only reads widgets and shows answers; the wizard asks the engine."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsFeature
from qgis.gui import QgsFieldComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QBrush, QColor
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from ..engine_client import SentenceSuggestion  # noqa: TID252 (the plugin folder name varies)
from . import plan
from .page_data import DataPage
from .widgets import WHY_STYLE

FATE_BACKGROUNDS = {
    "validation": QColor(250, 215, 215),
    "edge": QColor(255, 229, 200),
    "held_out": QColor(230, 220, 245),
    "unused": QColor(230, 230, 230),
}
# The picked feature's id, beside its WKT (a Qt 6 role is an enum member: take its value).
FEATURE_ID_ROLE = getattr(Qt.ItemDataRole.UserRole, "value", Qt.ItemDataRole.UserRole) + 1


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
