"""The wizard's Settings page: the new model's name, its base model, recipe, length, chip size,
validation and device. It exists so that what a run costs (a time estimate) and what it
would train and validate on (the engine's preview of the split) are seen, and a name the
engine cannot take is refused, before training starts. The page only reads widgets and
checks them; the wizard asks the engine."""

from __future__ import annotations

from typing import Any

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWizardPage,
)

from . import plan
from .widgets import WHY_STYLE

MODEL_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"


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
