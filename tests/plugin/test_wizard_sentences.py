"""Issue 17, item 1: the wizard no longer loses sentences silently.

Driven in real QGIS against a real engine: sentences tied to features inside the validation
strip are marked in the list and drawn on the map, they are not counted, Next is held with
the reason, "Move the validation area" finds a strip that lets them train, and what the page
says trains is exactly what the trainer's own code (run in the engine's venv) trains on. A
dataset with class names only is offered naive WREL, and trains with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QPoint, Qt
from qgis.PyQt.QtWidgets import QLineEdit, QWizard

from .conftest import ENGINE_PYTHON, KAMPALA, EngineProcess, engine_get
from .test_toolbar_run import add_raster
from .test_wizard import (
    LABELS,
    TRAIN_TIMEOUT_MS,
    click_next,
    settled,
)

# kampala_west_buildings instance ids: inside the default validation strip (the east 20 %
# of the labels' extent) with the chip of 256 px wholly inside it.
EAST = {5: "the house by the east edge", 9: "the roof in the east strip"}

# The trainer's own decision, in the engine's venv: which request sentences are in the WREL
# pool of full expressions (they train) and which validate.
TRAINING_SPLIT = """
import json, sys
from saymap.engine import registry
from saymap.training.data_sources import datasets_from_layers, inherit_working_resolution
from saymap.training.recipe import recipe_from_dict
from saymap.training.wrel import split_pools

request = json.load(sys.stdin)
recipe = recipe_from_dict(request["recipe"])
if request.get("base_model"):
    recipe.model.init = str(registry.resolve(request["base_model"]))
train, val = datasets_from_layers(
    request["dataset"], chip_size=recipe.data.chip_size, gsd_m=inherit_working_resolution(recipe)
)
pools = split_pools(train, recipe.data.full_ratio, recipe.run.seed)
records = train.dataset.records
trained = {records[train.indices[i]].sample_id for i in pools.full}
validated = {records[k].sample_id for k in val.indices} if val is not None else set()
fates = []
for item in range(1, len(request["dataset"]["sentences"]) + 1):
    ends = (f"/sentence{item}", f"/geometry{item}/sentence")  # tied to ids / drawn shapes
    ids = [r.sample_id for r in records if r.sample_id.endswith(ends)]
    fates.append("train" if ids[0] in trained else "validation" if ids[0] in validated else "other")
print(json.dumps(fates))
"""


def training_split(engine: EngineProcess, request: object) -> list[str]:
    """What the trainer does with each sentence of `request` (train / validation / other)."""
    run = subprocess.run(
        [str(ENGINE_PYTHON), "-c", TRAINING_SPLIT],
        input=json.dumps(request.to_json()),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SAYMAP_DATA_DIR": str(engine.data_dir), "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def page_fates(page) -> list[str]:
    """The page's fates in the trainer's three words."""
    out = []
    for row in page.sentence_rows():
        fate = page.row_fate(row)
        out.append(fate if fate in ("train", "validation") else "other")
    return out


def own_copy(real_data: Path, folder: Path) -> tuple[Path, Path]:
    """Kampala's raster and labels under the user's own names: SayMap's shared rasters keep
    an east hold-out that never trains, a user's own data has none."""
    folder.mkdir(parents=True, exist_ok=True)
    raster, labels = folder / "roofs.tif", folder / "roofs.geojson"
    shutil.copyfile(real_data / KAMPALA, raster)
    shutil.copyfile(real_data / LABELS, labels)
    return raster, labels


def open_on_sentences(qtbot, plugin, iface, raster: Path, labels_path: Path):
    project = QgsProject.instance()
    add_raster(project, raster, "roofs-image")
    labels = QgsVectorLayer(str(labels_path), "roofs", "ogr")
    assert labels.isValid()
    project.addMapLayer(labels)
    iface.window.show()
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(labels.crs())
    canvas.setExtent(labels.extent())
    plugin.toolbar.finetune_action.trigger()
    qtbot.waitUntil(lambda: getattr(plugin, "wizard", None) is not None, timeout=30_000)
    wizard = plugin.wizard
    assert wizard.data_page.label_layer() is labels  # the only layer with a class field
    click_next(qtbot, wizard)
    assert wizard.currentPage() is wizard.sentences_page
    return wizard, labels


def type_sentence(qtbot, page, row: int, text: str) -> None:
    """Open the sentence cell's editor and type into it, then Enter, as a user does."""
    table = page.table
    table.setCurrentCell(row, 0)
    table.editItem(table.item(row, 0))
    editors = [e for e in table.findChildren(QLineEdit) if e.isVisible()]
    assert len(editors) == 1
    editor = editors[0]
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits it, queued
    qtbot.waitUntil(lambda: table.item(row, 0).text() == text, timeout=5_000)


@pytest.mark.real_data
def test_sentences_in_the_validation_area_are_shown_not_counted_and_the_area_moves(
    plugin, iface, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    settings_for(data_dir=str(engine.data_dir))
    raster, labels_path = own_copy(real_data, tmp_path / "own")
    wizard, labels = open_on_sentences(qtbot, plugin, iface, raster, labels_path)
    page = wizard.sentences_page
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    # No sentence yet: Next is held, with the reason, and naive WREL is offered.
    settled(qtbot, wizard)
    assert not next_button.isEnabled()
    assert page.why.text().startswith("Add a sentence")
    assert page.naive.isVisibleTo(page)

    # The case: sentences tied to buildings on the east side, in the default strip.
    for feature in labels.getFeatures():
        if feature["instance_id"] in EAST:
            row = page.add_feature(feature)
            type_sentence(qtbot, page, row, EAST[feature["instance_id"]])
    settled(qtbot, wizard)
    assert [page.table.item(r, 3).text() for r in range(2)] == ["validation area"] * 2
    assert "Inside the validation area" in page.table.item(0, 0).toolTip()
    assert "building: 64 labelled features, 0 of 2 sentences train (add 3)" in page.summary.text()
    assert not next_button.isEnabled()
    assert page.why.text().startswith("None of the 2 sentences can train (2 validation area)")
    assert page.naive.isVisibleTo(page)  # offered, explained
    assert "Naive WREL trains on the class names alone" in page.naive_note.text()
    assert "the east 20 % of the labels' extent" in page.validation_note.text()
    # On the map: the strip, and both features in the colour of "validation".
    extent = labels.extent()
    east = (extent.xMaximum() - 0.2 * extent.width(), extent.yMinimum(), extent.xMaximum(),
            extent.yMaximum())  # fmt: skip
    overlay = wizard.overlay
    assert overlay.area is not None and overlay.area.isVisible()
    assert overlay.area_bounds == pytest.approx(east)
    assert [fate for _, fate in overlay.sentences] == ["validation", "validation"]
    box = overlay.area.asGeometry().boundingBox()  # in the canvas CRS (the labels' here)
    assert (box.xMinimum(), box.xMaximum()) == pytest.approx((east[0], east[2]))
    # Exactly what training would do with them.
    assert page_fates(page) == training_split(engine, wizard.request()) == ["validation"] * 2

    # "Move the validation area": the strip goes where the sentences are not.
    assert page.move_button.isVisibleTo(page) and page.move_button.isEnabled()
    qtbot.mouseClick(page.move_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: wizard.settings_page.validation_side.currentData() == "west", timeout=60_000
    )
    settled(qtbot, wizard)
    assert [page.table.item(r, 3).text() for r in range(2)] == ["trains"] * 2
    assert "building: 64 labelled features, 2 sentences (add 1)" in page.summary.text()
    assert page.why.text() == "" and next_button.isEnabled()
    assert not page.naive.isVisibleTo(page)  # sentences train: nothing to offer
    assert "the west 20 % of the labels' extent" in page.validation_note.text()
    west = (extent.xMinimum(), extent.yMinimum(), extent.xMinimum() + 0.2 * extent.width(),
            extent.yMaximum())  # fmt: skip
    assert overlay.area_bounds == pytest.approx(west)
    assert [fate for _, fate in overlay.sentences] == ["train", "train"]
    assert page_fates(page) == training_split(engine, wizard.request()) == ["train"] * 2

    # The Settings page shows the moved strip and the split it makes.
    click_next(qtbot, wizard)
    settings = wizard.settings_page
    assert settings.validation_kind.currentData() == "strip"
    assert settings.validation_side.currentData() == "west"
    settled(qtbot, wizard)
    assert "and 2 sentences" in settings.split.text()
    assert overlay.area is not None  # still drawn on Settings
    wizard.reject()
    assert overlay.area is None and not overlay.sentences  # nothing left on the map


@pytest.mark.real_data
def test_sentences_in_a_shared_raster_hold_out_are_marked_as_such(
    plugin, iface, engine: EngineProcess, settings_for, real_data, qtbot
) -> None:
    """On SayMap's own Kampala raster the east quarter never trains (the scorecard scores
    it): moving the validation strip cannot help there, and the page says why."""
    settings_for(data_dir=str(engine.data_dir))
    wizard, labels = open_on_sentences(
        qtbot, plugin, iface, real_data / KAMPALA, real_data / LABELS
    )
    page = wizard.sentences_page
    wizard.settings_page.set_validation("strip", "west")
    feature = next(f for f in labels.getFeatures() if f["instance_id"] == 9)
    page.add_feature(feature, "the roof in the east strip")
    settled(qtbot, wizard)
    assert page.table.item(0, 3).text() == "hold-out"
    assert "real-imagery hold-out" in page.table.item(0, 3).toolTip()
    assert page_fates(page) == training_split(engine, wizard.request()) == ["other"]
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.reject()


@pytest.mark.slow
@pytest.mark.real_data
def test_a_class_name_only_dataset_is_offered_naive_wrel_and_trains_with_it(
    plugin, iface, train_engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    settings_for(data_dir=str(train_engine.data_dir))
    raster, labels_path = own_copy(real_data, tmp_path / "own")
    wizard, _labels = open_on_sentences(qtbot, plugin, iface, raster, labels_path)
    page = wizard.sentences_page
    settled(qtbot, wizard)
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    assert page.naive.isVisibleTo(page) and not page.naive.isChecked()
    at = QPoint(8, page.naive.height() // 2)  # on the box (the widget spans the page)
    qtbot.mouseClick(page.naive, Qt.MouseButton.LeftButton, pos=at)
    assert page.naive.isChecked()
    settled(qtbot, wizard)
    assert page.why.text() == ""
    click_next(qtbot, wizard)
    settings = wizard.settings_page
    qtbot.waitUntil(lambda: settings.base_model.count() > 0, timeout=20_000)
    qtbot.keyClicks(settings.name, "roofs-naive")
    settings.steps.setValue(4)
    settings.chip.setCurrentIndex(settings.chip.findData(128))
    settings.recipe_overrides = {"data": {"max_val_samples": 8}, "optim": {"batch_size": 2}}
    settled(qtbot, wizard)
    assert "and 0 sentences" in settings.split.text()
    click_next(qtbot, wizard)
    training = wizard.training_page
    qtbot.waitUntil(
        lambda: training.job is not None and training.job.terminal, timeout=TRAIN_TIMEOUT_MS
    )
    assert training.job.state == "done", training.job.error
    job = engine_get(train_engine, f"/v1/jobs/{training.job.id}")
    assert job["request"]["recipe"]["wrel"]["method"] == "naive-wrel"
    assert job["request"]["dataset"]["sentences"] == []
    assert training.plot.total_steps == job["result"]["steps"] == 4  # no bank stage
    wizard.reject()
