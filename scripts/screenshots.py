"""Run inside the real QGIS desktop by scripts/screenshots.sh (`qgis --code`): type a prompt
into the SayMap toolbar over a real raster, wait for the result layer (named prompt · raster
· model), take screenshots of the whole X screen, then open Help ▸ About (version, guide,
the active model's card) and Settings (device, active model) and take one of each, then
walk the fine-tune wizard through a short real training run, one shot per page. Writes
status.json for the shell script and quits."""

import json
import os
import shutil
import subprocess
import traceback
from pathlib import Path

import qgis.utils
from qgis.core import (
    QgsApplication,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QTimer

RASTER = os.environ["SAYMAP_SHOT_RASTER"]
PROMPT = os.environ["SAYMAP_SHOT_PROMPT"]
OUT = Path(os.environ["SAYMAP_SHOT_OUT"])
WORK = Path(os.environ["SAYMAP_SHOT_WORK"])
NOTE = os.environ.get("SAYMAP_SHOT_NOTE", "")
MAX_BYTES = 400 * 1024
# The wizard pages are shot on a short real training run over the raster's label layer.
LABELS = (
    Path(os.environ.get("SAYMAP_SHOT_LABELS", ""))
    if os.environ.get("SAYMAP_SHOT_LABELS")
    else Path(RASTER).with_name(Path(RASTER).stem.replace("_rgb", "_buildings") + ".geojson")
)
WIZARD_STEPS = 6
status = {"ok": False, "prompt": PROMPT, "raster": RASTER, "note": NOTE, "shots": []}
iface = qgis.utils.iface
keep = []  # Python references for the timers' closures


def finish(error=None):
    if error:
        status["error"] = error
    (WORK / "status.json").write_text(json.dumps(status, indent=2))
    QTimer.singleShot(300, QgsApplication.instance().quit)


def later(ms, fn):
    def guarded():
        try:
            fn()
        except Exception:  # any failure ends the run with its traceback in status.json
            finish(traceback.format_exc())

    keep.append(guarded)
    QTimer.singleShot(ms, guarded)


def shoot(name):
    """The whole X screen as QGIS shows it, reduced to a palette PNG under 400 KB."""
    raw = WORK / f"{name}.raw.png"
    subprocess.run(["import", "-window", "root", str(raw)], check=True, timeout=60)
    target = OUT / name
    for colors in (256, 128, 64):
        subprocess.run(
            ["convert", str(raw), "-strip", "-colors", str(colors), f"PNG8:{target}"],
            check=True,
            timeout=120,
        )
        if target.stat().st_size < MAX_BYTES:
            break
    status["shots"].append({"file": str(target), "bytes": target.stat().st_size})


def start():
    window = iface.mainWindow()
    window.setGeometry(0, 0, 1280, 800)
    layer = QgsRasterLayer(RASTER, Path(RASTER).stem)
    if not layer.isValid():
        raise ValueError(f"not a raster: {RASTER}")
    QgsProject.instance().addMapLayer(layer)
    iface.mapCanvas().setExtent(layer.extent())
    plugin = qgis.utils.plugins["saymap"]
    toolbar = plugin.toolbar
    toolbar.raster_combo.setLayer(layer)
    toolbar.prompt_combo.setEditText(PROMPT)
    plugin.runner.layer_added.connect(lambda result: later(0, lambda: show_result(result)))
    plugin.runner.run_failed.connect(lambda message: finish(f"run failed: {message}"))
    toolbar.request_run()


def show_result(result):
    status["features"] = result.featureCount()
    status["layer"] = result.name()
    iface.setActiveLayer(result)
    iface.mapCanvas().refreshAllLayers()
    later(4000, result_shot)  # rendering and the message bar settle


def result_shot():
    shoot("screenshot_toolbar_result.png")
    plugin = qgis.utils.plugins["saymap"]
    about = next(a for a in plugin.actions if a.text() == "About SayMap…")
    about.trigger()  # as from Plugins ▸ Raster ▸ SayMap ▸ About SayMap…
    dialog = plugin.about_dialog
    dialog.move(300, 90)
    wait_for_about(dialog, 0)


def wait_for_about(dialog, waited):
    if dialog.models is None and waited < 60_000:
        later(250, lambda: wait_for_about(dialog, waited + 250))
        return
    status["about_version"] = dialog.version
    status["about_card"] = dialog.card_text()[:200]
    later(1000, about_shot)


def about_shot():
    shoot("screenshot_about.png")
    plugin = qgis.utils.plugins["saymap"]
    plugin.about_dialog.reject()
    plugin.open_settings()
    dialog = plugin.settings_dialog
    dialog.move(380, 120)
    dialog.refresh_engine()
    wait_for_settings(dialog, 0)


def wait_for_settings(dialog, waited):
    if dialog.health is None and waited < 60_000:
        later(250, lambda: wait_for_settings(dialog, waited + 250))
        return
    status["device"] = dialog.device_label.text()
    status["active_model"] = dialog.model_combo.currentText()
    later(1000, settings_shot)


def settings_shot():
    shoot("screenshot_settings.png")
    plugin = qgis.utils.plugins["saymap"]
    plugin.settings_dialog.reject()
    if not LABELS.is_file():
        status["wizard"] = f"no labels at {LABELS}: wizard screenshots skipped"
        return done()
    labels = QgsVectorLayer(str(LABELS), "buildings", "ogr")
    QgsProject.instance().addMapLayer(labels)
    plugin.toolbar.finetune_action.trigger()
    later(3000, lambda: wizard_data(plugin, labels))


def wizard_data(plugin, labels):
    """The fine-tune wizard, page by page, with a short real training run: the Sentences page
    with sentences inside the validation strip (marked in the list, red on the map), and the
    Training page after a job the engine refused, with Retry and the way back to its fix."""
    wizard = plugin.wizard
    wizard.move(0, 90)  # the wizard on the left, the labels on the map to its right
    extent = labels.extent()
    shown = QgsRectangle(extent)
    shown.setXMinimum(extent.xMinimum() - 1.1 * extent.width())
    shown.setXMaximum(extent.xMaximum() + 0.05 * extent.width())
    iface.mapCanvas().setExtent(shown)
    iface.mapCanvas().refresh()
    wizard.data_page.labels.setLayer(labels)
    later(1000, lambda: wizard_step(wizard, "data", lambda: wizard_sentences(wizard, labels)))


def when(condition, then, what, limit_ms=120_000, waited=0):
    """`then()` once `condition()` holds (polled; the GUI keeps running), or fail."""
    if condition():
        then()
    elif waited >= limit_ms:
        finish(f"wizard: timed out waiting for {what}")
    else:
        later(250, lambda: when(condition, then, what, limit_ms, waited + 250))


def settled(wizard, then):
    """`then()` once the engine's preview answered for what the pages hold."""
    when(lambda: not wizard.preview_pending(), then, "the engine's training preview")


def wizard_step(wizard, name, then):
    def shoot_and_go():
        shoot(f"screenshot_wizard_{name}.png")
        wizard.next()
        later(1000, then)

    settled(wizard, shoot_and_go)


def wizard_sentences(wizard, labels):
    picked = {  # the first trains; the others are in the default (east) validation strip
        2: "the small building in the top left",
        5: "the roof next to the dirt road",
        8: "the house with the metal roof",
    }
    page = wizard.sentences_page
    for feature in labels.getFeatures():
        if feature["instance_id"] in picked:
            page.add_feature(feature, picked[feature["instance_id"]])

    def record():
        status["wizard_sentences"] = [page.table.item(r, 3).text() for r in range(3)]
        status["wizard_sentences_summary"] = page.summary.text()
        page.table.clearSelection()  # the rows' colours say what each sentence does
        later(1500, lambda: wizard_step(wizard, "sentences", lambda: wizard_settings(wizard)))

    settled(wizard, record)


def wizard_settings(wizard):
    page = wizard.settings_page
    page.name.setText("kampala-roofs")
    page.steps.setValue(WIZARD_STEPS)
    page.chip.setCurrentIndex(page.chip.findData(128))
    page.validation.setValue(0.3)  # the east 30 % of the labels' extent
    page.recipe_overrides = {"data": {"max_val_samples": 8}, "optim": {"batch_size": 2}}

    def shoot_and_go():
        shoot("screenshot_wizard_settings.png")
        take_name_meanwhile(wizard, "kampala-roofs")
        wizard.next()
        later(500, lambda: wizard_refused(wizard))

    later(500, lambda: settled(wizard, shoot_and_go))


def take_name_meanwhile(wizard, name):
    """Register `name` behind the wizard's back (as another session would): a copy of the
    base model, so the engine refuses the wizard's job."""
    models = wizard.client.models()
    base = next(m for m in models.models if m.name == wizard.settings_page.base_model.currentText())
    shutil.copytree(base.path, Path(os.environ["SAYMAP_DATA_DIR"]) / "models" / name)


def wizard_refused(wizard):
    """Training: the job was refused; shoot the page with Retry and the fix button."""
    training = wizard.training_page
    when(lambda: training.error is not None or training.job is not None,
         lambda: later(1000, lambda: wizard_retry_shot(wizard)), "the refused job")  # fmt: skip


def wizard_retry_shot(wizard):
    training = wizard.training_page
    status["wizard_refused"] = training.status.text()
    if training.error is None:
        return finish(f"wizard: the job was not refused: {training.status.text()}")
    shoot("screenshot_wizard_retry.png")
    training.fix_button.click()  # "Back to Settings to fix it"
    page = wizard.settings_page
    when(lambda: "already has a model" in page.why.text(),
         lambda: wizard_fix(wizard), "the Settings page to say why")  # fmt: skip


def wizard_fix(wizard):
    page = wizard.settings_page
    status["wizard_fix_reason"] = page.why.text()
    page.name.setText("kampala-roofs-2")
    settled(wizard, lambda: (wizard.next(), later(500, lambda: wizard_training(wizard, 0))))


def wizard_training(wizard, waited):
    job = wizard.training_page.job
    if (job is None or not job.terminal) and waited < 300_000:
        later(500, lambda: wizard_training(wizard, waited + 500))
        return
    status["wizard_job"] = job.state if job is not None else "none"
    status["wizard_jobs"] = wizard.training_page.jobs_started
    status["wizard_val_iou"] = wizard.training_page.val_iou
    later(500, lambda: wizard_step(wizard, "training", lambda: wizard_result(wizard)))


def wizard_result(wizard):
    shoot("screenshot_wizard_result.png")
    wizard.reject()
    done()


def done():
    status["ok"] = True
    qgis.utils.unloadPlugin("saymap")  # stops the engine the plugin started
    finish()


later(1500, start)
