"""The SayMap toolbar: raster picker, prompt box, area choice, Run, progress, Settings.

It only builds a RunInput and emits it; the runner does the work (Deepness's pattern).
"""

from __future__ import annotations

from dataclasses import dataclass

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import QStringListModel, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QAction,
    QComboBox,
    QCompleter,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QToolBar,
    QWidget,
)

from .area import AREA_LABELS, AreaChoice
from .errors import PromptError

MAX_PROMPTS = 16


@dataclass(frozen=True)
class RunInput:
    """What the toolbar holds when Run is pressed."""

    raster: QgsRasterLayer | None
    prompts: tuple[str, ...]
    area: AreaChoice
    polygon_layer: QgsVectorLayer | None


def parse_prompts(text: str) -> tuple[str, ...]:
    """One prompt, or several separated by ';' ("cars; trees")."""
    prompts = tuple(p.strip() for p in text.split(";") if p.strip())
    if not prompts:
        raise PromptError("Type what to map into the SayMap prompt box, e.g. “storage tanks”.")
    if len(prompts) > MAX_PROMPTS:
        raise PromptError(f"At most {MAX_PROMPTS} prompts at once (separated by ';').")
    return prompts


class SayMapToolbar(QToolBar):
    run_requested = pyqtSignal(object)  # RunInput
    input_error = pyqtSignal(str)  # what to fix before Run can work
    cancel_requested = pyqtSignal()
    settings_requested = pyqtSignal()
    finetune_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("SayMap", parent)
        self.setObjectName("SayMapToolbar")

        self.raster_combo = QgsMapLayerComboBox(self)
        self.raster_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.raster_combo.setToolTip("Raster layer to segment")
        self.raster_combo.setMinimumWidth(160)
        self.addWidget(self.raster_combo)

        self.prompt_combo = QComboBox(self)
        self.prompt_combo.setEditable(True)
        self.prompt_combo.setInsertPolicy(QComboBox.NoInsert)
        self.prompt_combo.setMinimumWidth(260)
        self.prompt_combo.setMaximumWidth(480)
        self.prompt_combo.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.prompt_combo.lineEdit().setPlaceholderText("What to map, e.g. storage tanks")
        self.prompt_combo.setToolTip("What to map; Enter runs. Several prompts: separate with ;")
        self._completions = QStringListModel(self)
        completer = QCompleter(self._completions, self)
        completer.setCaseSensitivity(Qt.CaseInsensitive)
        completer.setFilterMode(Qt.MatchContains)
        self.prompt_combo.setCompleter(completer)
        self.prompt_combo.lineEdit().returnPressed.connect(self.request_run)
        self.addWidget(self.prompt_combo)

        self.run_action = QAction("Run", self)
        self.run_action.setToolTip("Segment the raster from the prompt (Enter)")
        self.run_action.triggered.connect(self.request_run)
        self.addAction(self.run_action)

        self.area_combo = QComboBox(self)
        for choice, label in AREA_LABELS.items():
            self.area_combo.addItem(label, choice.value)
        self.area_combo.setToolTip("Where to segment")
        self.area_combo.currentIndexChanged.connect(self._area_changed)
        self.addWidget(self.area_combo)

        self.polygon_combo = QgsMapLayerComboBox(self)
        self.polygon_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.polygon_combo.setToolTip("Polygon layer whose selected features bound the area")
        self._polygon_action = self.addWidget(self.polygon_combo)
        self._polygon_action.setVisible(False)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(120)
        self.progress.setTextVisible(True)
        self.progress_action = self.addWidget(self.progress)
        self.progress_action.setVisible(False)
        self.status_label = QLabel(self)
        self._status_action = self.addWidget(self.status_label)
        self._status_action.setVisible(False)

        self.cancel_action = QAction("Cancel", self)
        self.cancel_action.setToolTip("Cancel the running SayMap job")
        self.cancel_action.triggered.connect(self.cancel_requested)
        self.cancel_action.setEnabled(False)
        self.addAction(self.cancel_action)

        self.finetune_action = QAction("Fine-tune…", self)
        self.finetune_action.setToolTip("Teach the model from your own layers and sentences")
        self.finetune_action.triggered.connect(self.finetune_requested)
        self.addAction(self.finetune_action)

        self.settings_action = QAction("Settings", self)
        self.settings_action.setToolTip("SayMap settings: engine, device, model, output folder")
        self.settings_action.triggered.connect(self.settings_requested)
        self.addAction(self.settings_action)

        self._history: list[str] = []
        self._classes: list[str] = []

    # -- state shown to the user -------------------------------------------------------
    def area(self) -> AreaChoice:
        return AreaChoice(self.area_combo.currentData())

    def set_area(self, choice: AreaChoice) -> None:
        self.area_combo.setCurrentIndex(self.area_combo.findData(choice.value))

    def _area_changed(self) -> None:
        self._polygon_action.setVisible(self.area() == AreaChoice.SELECTED_FEATURES)

    def set_history(self, history: list[str]) -> None:
        text = self.prompt_combo.currentText()
        self._history = list(history)
        self.prompt_combo.clear()
        self.prompt_combo.addItems(self._history)
        self.prompt_combo.setEditText(text)
        self._update_completions()

    def set_classes(self, classes: list[str] | tuple[str, ...]) -> None:
        """Class names of the active model, offered as completions."""
        self._classes = list(classes)
        self._update_completions()

    def completions(self) -> list[str]:
        return self._completions.stringList()

    def _update_completions(self) -> None:
        merged = list(dict.fromkeys([*self._history, *self._classes]))
        self._completions.setStringList(merged)

    def set_busy(self, busy: bool, status: str = "") -> None:
        self.run_action.setEnabled(not busy)
        self.cancel_action.setEnabled(busy)
        self.progress_action.setVisible(busy)
        self._status_action.setVisible(busy and bool(status))
        self.status_label.setText(status)
        if busy:
            self.progress.setValue(0)

    def set_progress(self, percent: float) -> None:
        self.progress.setValue(round(percent))

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)
        self._status_action.setVisible(bool(text) and self.cancel_action.isEnabled())

    # -- the one thing it does -----------------------------------------------------------
    def current_input(self) -> RunInput:
        """The toolbar's state as a RunInput; PromptError when the prompt box is empty."""
        layer = self.raster_combo.currentLayer()
        polygons = self.polygon_combo.currentLayer()
        return RunInput(
            raster=layer if isinstance(layer, QgsRasterLayer) else None,
            prompts=parse_prompts(self.prompt_combo.currentText()),
            area=self.area(),
            polygon_layer=polygons if isinstance(polygons, QgsVectorLayer) else None,
        )

    def request_run(self) -> None:
        if not self.run_action.isEnabled():
            return
        try:
            run_input = self.current_input()
        except PromptError as exc:
            self.input_error.emit(str(exc))
            return
        self.run_requested.emit(run_input)
