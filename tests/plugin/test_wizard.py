"""The fine-tune wizard driven end to end in real QGIS against a real engine: kampala's
labels + three sentences → a registered model the toolbar's next prompt uses; Cancel
leaves the previous model active and nothing half-registered."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from qgis.core import QgsProject, QgsVectorLayer

from .conftest import ENGINE_PYTHON, HRO, KAMPALA, TEST_MODEL, EngineProcess, engine_get
from .test_toolbar_run import add_raster, type_and_run

LABELS = "kampala/kampala_west_buildings.geojson"
SENTENCES = {  # instance_id -> a full expression (LRB-WREL's stage 1 needs a few)
    2: "the small building in the top left",
    5: "the roof next to the dirt road",
    8: "the house with the metal roof",
}
TRAIN_TIMEOUT_MS = 300_000


def open_wizard(qtbot, plugin, project: QgsProject, real_data: Path, name: str, active: str):
    """Kampala's raster and labels in the project, the wizard opened from the toolbar and
    walked to the Settings page with three sentences tied to picked features."""
    add_raster(project, real_data / KAMPALA, "kampala")
    labels = QgsVectorLayer(str(real_data / LABELS), "buildings", "ogr")
    assert labels.isValid()
    project.addMapLayer(labels)
    plugin.toolbar.finetune_action.trigger()
    qtbot.waitUntil(lambda: getattr(plugin, "wizard", None) is not None, timeout=30_000)
    wizard = plugin.wizard
    data = wizard.data_page
    data.labels.setLayer(labels)
    assert data.class_field.currentField() == "class"
    assert data.class_counts() == {"building": labels.featureCount()}
    assert [r.name() for r in data.raster_layers()] == ["kampala"]
    assert data.isComplete()
    click_next(qtbot, wizard)
    page = wizard.sentences_page
    assert not page.isComplete()  # no sentence yet
    for feature in labels.getFeatures():
        if feature["instance_id"] in SENTENCES:
            page.add_feature(feature, SENTENCES[feature["instance_id"]])
    settled(qtbot, wizard)
    # With the default validation strip (the east 20 %), two of them are no use for training
    # (issue 17): the page says so instead of "3 sentences (enough)".
    assert len(page.sentences()) == 3 and page.isComplete()
    assert "1 of 3 sentences train (add 2)" in page.summary.text()
    assert [page.table.item(r, 3).text() for r in range(3)] == [
        "trains",
        "validation area",
        "validation edge",
    ]
    click_next(qtbot, wizard)
    settings = wizard.settings_page
    qtbot.waitUntil(lambda: settings.base_model.count() > 0, timeout=20_000)
    assert settings.base_model.currentText() == active  # starts from the active model
    qtbot.keyClicks(settings.name, name)
    settings.chip.setCurrentIndex(settings.chip.findData(128))
    settings.recipe_overrides = {"data": {"max_val_samples": 8}, "optim": {"batch_size": 2}}
    return wizard


def settled(qtbot, wizard, timeout: int = 60_000) -> None:
    """Wait until the engine's preview answered for what the pages now hold."""

    qtbot.waitUntil(lambda: not wizard.preview_pending(), timeout=timeout)


def click_next(qtbot, wizard) -> None:
    """Press Next as a user does: only once it is enabled."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QWizard

    button = wizard.button(QWizard.WizardButton.NextButton)
    before = wizard.currentId()
    if wizard.currentId() in (1, 2):
        settled(qtbot, wizard)
    qtbot.waitUntil(button.isEnabled, timeout=30_000)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert wizard.currentId() == before + 1, wizard.currentPage().why.text()


@pytest.mark.slow
@pytest.mark.real_data
def test_wizard_trains_registers_and_the_toolbar_uses_the_model(
    plugin, train_engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    settings_for(data_dir=str(train_engine.data_dir), output_dir=str(tmp_path))
    project = QgsProject.instance()
    wizard = open_wizard(qtbot, plugin, project, real_data, "kampala-wizard", TEST_MODEL)
    wizard.settings_page.steps.setValue(6)
    assert "CPU" in wizard.settings_page.estimate.text()
    assert wizard.settings_page.validation_kind.currentData() == "strip"  # the default
    wizard.settings_page.validation.setValue(0.3)
    area = wizard.validation()["area"]
    assert area["crs"] == "EPSG:3857"
    click_next(qtbot, wizard)  # Training: the job is posted and followed
    training = wizard.training_page
    qtbot.waitUntil(
        lambda: training.job is not None and training.job.terminal, timeout=TRAIN_TIMEOUT_MS
    )
    assert training.job.state == "done", training.job.error
    assert training.isComplete() and training.plot.loss
    engine_job = engine_get(train_engine, f"/v1/jobs/{training.job.id}")
    assert engine_job["result"]["model"] == "kampala-wizard"
    assert training.plot.total_steps == engine_job["result"]["steps"]  # 6 model + 2 bank
    # The IoU the wizard shows is the engine's last validation IoU for this job.
    assert training.val_iou is not None
    assert training.val_iou == pytest.approx(engine_job["metrics"]["val_iou"])
    wizard.next()
    assert wizard.result_page.model.text() == "kampala-wizard"
    assert wizard.result_page.val_iou.text() == f"{training.val_iou:.4f}"
    before = engine_job["metrics"]["val_iou_before"]  # the base model on the same samples
    assert wizard.result_page.before_iou.text() == f"{before:.4f}"
    check_same_iou_as_saymap_eval(engine_job, training.val_iou, area, tmp_path)
    check_prediction_layer(wizard.result_page, project, area, engine_job)
    activated: list[object] = []
    wizard.model_activated.connect(activated.append)
    wizard.accept()
    qtbot.waitUntil(lambda: bool(activated), timeout=20_000)
    assert engine_get(train_engine, "/v1/models")["active"] == "kampala-wizard"

    small = add_raster(project, real_data / HRO, "hro")  # small: the check stays quick
    type_and_run(qtbot, plugin, small, "building")
    segments = [j for j in engine_get(train_engine, "/v1/jobs")["jobs"] if j["kind"] == "segment"]
    assert segments and segments[-1]["result"]["model"] == "kampala-wizard"


def check_same_iou_as_saymap_eval(job: dict, shown: float, area: dict, tmp: Path) -> None:
    """The IoU the wizard shows is what `saymap eval` computes for the registered model on
    the validation chips the job kept; those chips lie in the validation strip."""
    result = job["result"]
    chips = Path(result["validation_chips"])
    records = [json.loads(x) for x in (chips / "samples.jsonl").read_text().splitlines()]
    assert records and all(r["raster"].endswith("kampala_west_rgb.tif") for r in records)
    out = tmp / "eval.json"
    run = subprocess.run(
        [str(ENGINE_PYTHON), "-m", "saymap.engine.cli", "eval", "--checkpoint",
         result["model_path"], "--data", str(chips), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    scored = json.loads(out.read_text())["results"]["native"]
    assert scored["n"] == len(records)
    assert scored["miou"] == pytest.approx(shown, abs=1e-9)


def check_prediction_layer(page, project: QgsProject, area: dict, job: dict) -> None:
    """The Result page added the model's predictions on the validation strip as a layer in
    the raster's CRS; whatever it found lies inside the strip."""
    assert len(page.prediction_layers) == 1
    layer = page.prediction_layers[0]
    assert layer.isValid() and project.mapLayer(layer.id()) is layer
    assert "on validation" in layer.name() and "polygons" in page.predictions.text()
    assert layer.crs().authid() == "EPSG:3857"  # kampala's own
    result = job["result"]
    command = f"saymap eval --checkpoint {result['model_path']} --data {result['validation_chips']}"
    assert page.reproduce.text() == command
    x_min = area["bounds"][0]
    for feature in layer.getFeatures():
        assert feature["prompt"] == "building"
        assert feature.geometry().boundingBox().xMinimum() >= x_min - 0.5


@pytest.mark.slow
@pytest.mark.real_data
def test_cancel_keeps_the_previous_model_and_registers_nothing(
    plugin, train_engine: EngineProcess, settings_for, real_data, qtbot
) -> None:
    settings_for(data_dir=str(train_engine.data_dir))
    active_before = engine_get(train_engine, "/v1/models")["active"]
    wizard = open_wizard(
        qtbot, plugin, QgsProject.instance(), real_data, "never-registered", active_before
    )
    wizard.settings_page.steps.setValue(500)
    click_next(qtbot, wizard)
    training = wizard.training_page
    qtbot.waitUntil(
        lambda: training.job is not None and training.job.state == "running", timeout=60_000
    )
    # Closing the wizard (as closing QGIS) leaves the job running; a new wizard reattaches.
    job_id = training.job.id
    wizard.reject()
    assert engine_get(train_engine, f"/v1/jobs/{job_id}")["state"] in {"queued", "running"}
    plugin.toolbar.finetune_action.trigger()
    qtbot.waitUntil(lambda: plugin.wizard is not wizard, timeout=30_000)
    wizard = plugin.wizard
    training = wizard.training_page
    qtbot.waitUntil(lambda: training.job is not None and training.job.id == job_id, timeout=30_000)
    assert wizard.currentPage() is training
    qtbot.waitUntil(lambda: bool(training.plot.loss), timeout=60_000)
    training.cancel_button.click()
    qtbot.waitUntil(lambda: training.job.terminal, timeout=120_000)
    assert training.job.state == "cancelled"
    assert not training.isComplete()
    assert "previous model stays active" in training.status.text()
    models = engine_get(train_engine, "/v1/models")
    assert models["active"] == active_before
    assert "never-registered" not in {m["name"] for m in models["models"]}
    leftovers = list((train_engine.data_dir / "models").glob("*never-registered*"))
    leftovers += list((train_engine.data_dir / "models").glob(".never-registered*"))
    assert leftovers == []
    assert not (train_engine.data_dir / "training" / training.job.id).exists()
    wizard.reject()


@pytest.mark.real_data
def test_clicking_a_feature_on_the_map_adds_a_sentence_row_and_the_client_matches_openapi(
    plugin, iface, train_engine: EngineProcess, settings_for, real_data, qtbot
) -> None:
    import dataclasses

    from qgis.PyQt.QtCore import QPoint, Qt

    from saymap.engine_client import SentenceLabel, TrainDataset, TrainRequest

    settings_for(data_dir=str(train_engine.data_dir))
    project = QgsProject.instance()
    add_raster(project, real_data / KAMPALA, "kampala")
    labels = QgsVectorLayer(str(real_data / LABELS), "buildings", "ogr")
    project.addMapLayer(labels)
    plugin.toolbar.finetune_action.trigger()
    qtbot.waitUntil(lambda: getattr(plugin, "wizard", None) is not None, timeout=30_000)
    wizard = plugin.wizard
    wizard.data_page.labels.setLayer(labels)
    wizard.next()
    canvas = iface.mapCanvas()
    iface.window.show()
    canvas.setDestinationCrs(labels.crs())
    feature = next(f for f in labels.getFeatures() if f["instance_id"] == 5)
    box = feature.geometry().boundingBox()
    box.grow(box.width() * 2)
    canvas.setExtent(box)
    canvas.refresh()
    wizard.sentences_page.pick_button.setChecked(True)
    assert canvas.mapTool() is wizard.picker
    inside = feature.geometry().pointOnSurface().asPoint()
    pixel = canvas.getCoordinateTransform().transform(inside)
    where = QPoint(round(pixel.x()), round(pixel.y()))
    qtbot.mouseClick(canvas.viewport(), Qt.LeftButton, pos=where)
    page = wizard.sentences_page
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=10_000)
    assert page.table.item(0, 2).text() == f"#{feature.id()}"
    assert labels.selectedFeatureIds() == [feature.id()]
    page.table.item(0, 0).setText("the roof next to the dirt road")
    assert page.sentences()[0][:2] == ("the roof next to the dirt road", "building")
    wizard.sentences_page.pick_button.setChecked(False)
    assert canvas.mapTool() is None
    wizard.reject()

    # The request the wizard posts names exactly the fields the served schema documents.
    schemas = engine_get(train_engine, "/openapi.json")["components"]["schemas"]
    for cls, name in (
        (TrainRequest, "TrainRequest"),
        (TrainDataset, "TrainDataset"),
        (SentenceLabel, "SentenceLabel"),
    ):
        assert {f.name for f in dataclasses.fields(cls)} == set(schemas[name]["properties"])
