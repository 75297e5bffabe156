"""The SayMap toolbar: raster picker, prompt box, area choice, Run, progress, Settings.

It only builds a RunInput and emits it; the runner does the work (Deepness's pattern).
The raster picker follows the layer selected in the Layers panel (follow_layer), and offers
"all visible rasters": every raster shown on the map, sent as one collection job.
"""

from __future__ import annotations

from dataclasses import dataclass

from qgis.core import (
    QgsApplication,
    QgsMapLayer,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import QEvent, QObject, QStringListModel, Qt, pyqtSignal
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
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
from .qt_compat import QAction
from .request import split_prompts

# Wide enough for a raster's name ("kampala_west_rgb", "201404_13SED190110…"): characters.
LAYER_NAME_CHARS = 24
POLYGON_NAME_CHARS = 18


# The raster picker's extra choice: every raster shown on the map, as one collection job.
ALL_VISIBLE = "All visible rasters"


@dataclass(frozen=True)
class RunInput:
    """What the toolbar holds when Run is pressed, and what a rerun changes."""

    raster: QgsRasterLayer | None
    prompts: tuple[str, ...]
    area: AreaChoice
    polygon_layer: QgsVectorLayer | None
    assume_crs: str | None = None  # "use the project's CRS", offered when the file has none
    resolution_checked: bool = False  # "run anyway" after the resolution warning
    all_visible: bool = False  # "all visible rasters": `rasters`, as shown when Run was pressed
    rasters: tuple[QgsRasterLayer, ...] = ()

    def layers(self) -> tuple[QgsRasterLayer, ...]:
        """The rasters to segment: the chosen one, or every visible one."""
        if self.all_visible:
            return self.rasters
        return () if self.raster is None else (self.raster,)


def visible_rasters(project: QgsProject) -> tuple[QgsRasterLayer, ...]:
    """The valid raster layers shown on the map (ticked, and every group above them), in the
    Layers panel's order from the top."""
    found = []
    for node in project.layerTreeRoot().findLayers():
        layer = node.layer()
        if isinstance(layer, QgsRasterLayer) and layer.isValid() and node.isVisible():
            found.append(layer)
    return tuple(dict.fromkeys(found))


def theme_icon(name: str) -> QIcon:
    """One of QGIS's own icons (so the toolbar looks like the rest of QGIS)."""
    return QgsApplication.getThemeIcon(name)


def _layer_combo(parent: QWidget, filters: object, chars: int, tip: str) -> QgsMapLayerComboBox:
    combo = QgsMapLayerComboBox(parent)
    combo.setFilters(filters)
    combo.setToolTip(tip)
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    combo.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
    return combo


class SayMapToolbar(QToolBar):
    run_requested = pyqtSignal(object)  # RunInput
    input_error = pyqtSignal(str)  # what to fix before Run can work
    cancel_requested = pyqtSignal()
    settings_requested = pyqtSignal()
    finetune_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("SayMap", parent)
        self.setObjectName("SayMapToolbar")

        self.raster_combo = _layer_combo(
            self,
            QgsMapLayerProxyModel.Filter.RasterLayer,
            LAYER_NAME_CHARS,
            "Raster layer to segment (follows the layer selected in the Layers panel), or "
            "all visible rasters as one job",
        )
        self.raster_combo.setAdditionalItems([ALL_VISIBLE])
        # Only a person's choice of "All visible rasters" stops the picker following the Layers
        # panel: with no raster in the project it is the only item, chosen by default.
        self._chose_all_visible = False
        self.raster_combo.activated.connect(self._raster_activated)
        self.addWidget(self.raster_combo)

        self.prompt_combo = QComboBox(self)
        self.prompt_combo.setEditable(True)
        self.prompt_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.prompt_combo.setMinimumWidth(260)
        self.prompt_combo.setMaximumWidth(480)
        self.prompt_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.prompt_combo.lineEdit().setPlaceholderText("What to map, e.g. storage tanks")
        self.prompt_combo.setToolTip("What to map; Enter runs. Several prompts: separate with ;")
        self._completions = QStringListModel(self)
        completer = QCompleter(self._completions, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.prompt_combo.setCompleter(completer)
        # Enter runs. An editable QComboBox hands a Return its line edit ignored back to it a
        # second time (returnPressed twice per key press), so the key press itself is taken
        # here; returnPressed still serves the Return the completion popup passes on.
        self.prompt_combo.lineEdit().installEventFilter(self)
        self.prompt_combo.lineEdit().returnPressed.connect(self.request_run)
        self.addWidget(self.prompt_combo)

        self.run_action = QAction(theme_icon("/mActionStart.svg"), "Run", self)
        self.run_action.setToolTip("Segment the raster from the prompt (Enter)")
        self.run_action.triggered.connect(self.request_run)
        self.addAction(self.run_action)

        self.area_combo = QComboBox(self)
        for choice, label in AREA_LABELS.items():
            self.area_combo.addItem(label, choice.value)
        self.area_combo.setToolTip("Where to segment")
        self.area_combo.currentIndexChanged.connect(self._area_changed)
        self.addWidget(self.area_combo)

        self.polygon_combo = _layer_combo(
            self,
            QgsMapLayerProxyModel.Filter.PolygonLayer,
            POLYGON_NAME_CHARS,
            "Polygon layer whose selected features bound the area",
        )
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

        self.cancel_action = QAction(theme_icon("/mTaskCancel.svg"), "Cancel", self)
        self.cancel_action.setToolTip("Cancel the running SayMap job")
        self.cancel_action.triggered.connect(self.cancel_requested)
        self.cancel_action.setEnabled(False)
        self.addAction(self.cancel_action)

        self.finetune_action = QAction(theme_icon("/processingModel.svg"), "Fine-tune…", self)
        self.finetune_action.setToolTip("Teach the model from your own layers and sentences")
        self.finetune_action.triggered.connect(self.finetune_requested)
        self.addAction(self.finetune_action)

        self.settings_action = QAction(theme_icon("/mActionOptions.svg"), "Settings", self)
        self.settings_action.setToolTip(
            "SayMap settings: engine, device, model, where results go, score labels"
        )
        self.settings_action.triggered.connect(self.settings_requested)
        self.addAction(self.settings_action)

        self._history: list[str] = []
        self._classes: list[str] = []

    # -- state shown to the user -------------------------------------------------------
    def area(self) -> AreaChoice:
        return AreaChoice(self.area_combo.currentData())

    def set_area(self, choice: AreaChoice) -> None:
        self.area_combo.setCurrentIndex(self.area_combo.findData(choice.value))

    def follow_layer(self, layer: QgsMapLayer | None) -> None:
        """The layer selected in the Layers panel becomes the raster to segment (a raster
        only: selecting a vector layer keeps the raster chosen). "All visible rasters" stays
        chosen until a raster is picked here: selecting layers is how one ticks them."""
        if self._chose_all_visible and self.all_visible():
            return
        if isinstance(layer, QgsRasterLayer) and layer.isValid():
            self.raster_combo.setLayer(layer)

    def all_visible(self) -> bool:
        """Whether the raster picker says "all visible rasters"."""
        return self.raster_combo.currentLayer() is None and (
            self.raster_combo.currentText() == ALL_VISIBLE
        )

    def choose_all_visible(self) -> None:
        self.raster_combo.setCurrentIndex(self.raster_combo.findText(ALL_VISIBLE))
        self._chose_all_visible = True

    def _raster_activated(self, _index: int) -> None:
        self._chose_all_visible = self.all_visible()

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
        all_visible = self.all_visible()
        return RunInput(
            raster=layer if isinstance(layer, QgsRasterLayer) else None,
            prompts=split_prompts(self.prompt_combo.currentText()),
            area=self.area(),
            polygon_layer=polygons if isinstance(polygons, QgsVectorLayer) else None,
            all_visible=all_visible,
            rasters=visible_rasters(QgsProject.instance()) if all_visible else (),
        )

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.prompt_combo.lineEdit()
            and event.type() == QEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            self.request_run()
            return True  # taken: neither the line edit nor the combo box sees it again
        return super().eventFilter(watched, event)

    def request_run(self) -> None:
        if not self.run_action.isEnabled():
            return
        try:
            run_input = self.current_input()
        except PromptError as exc:
            self.input_error.emit(str(exc))
            return
        self.run_requested.emit(run_input)
