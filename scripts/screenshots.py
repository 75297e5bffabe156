"""Run inside the real QGIS desktop by scripts/screenshots.sh (`qgis --code`): type a prompt
into the SayMap toolbar over a real raster, wait for the result layer, take screenshots of
the whole X screen, then open Settings (device, active model) and take another. Writes
status.json for the shell script and quits."""

import json
import os
import subprocess
import traceback
from pathlib import Path

import qgis.utils
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer

RASTER = os.environ["SAYMAP_SHOT_RASTER"]
PROMPT = os.environ["SAYMAP_SHOT_PROMPT"]
OUT = Path(os.environ["SAYMAP_SHOT_OUT"])
WORK = Path(os.environ["SAYMAP_SHOT_WORK"])
NOTE = os.environ.get("SAYMAP_SHOT_NOTE", "")
MAX_BYTES = 400 * 1024
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
    status["ok"] = True
    plugin = qgis.utils.plugins["saymap"]
    plugin.settings_dialog.reject()
    qgis.utils.unloadPlugin("saymap")  # stops the engine the plugin started
    finish()


later(1500, start)
