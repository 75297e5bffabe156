"""Run by the real QGIS desktop (`qgis --code`): install the plugin through QGIS's own
"Install from ZIP" code path, check it loaded, unload it, write what was seen, quit.

Not a pytest module: test_package_install.py starts QGIS under Xvfb with this script.
"""

import json
import os
import traceback

import pyplugin_installer
import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QToolBar

RESULT = os.environ["SAYMAP_TEST_RESULT"]


def toolbar_present():
    return qgis.utils.iface.mainWindow().findChild(QToolBar, "SayMapToolbar") is not None


def check():
    seen = {}
    try:
        pyplugin_installer.instance().installFromZipFile(os.environ["SAYMAP_TEST_ZIP"])
        seen["home_plugin_path"] = qgis.utils.home_plugin_path
        seen["installed"] = os.path.isfile(
            os.path.join(qgis.utils.home_plugin_path, "saymap", "metadata.txt")
        )
        seen["active"] = "saymap" in qgis.utils.active_plugins
        seen["toolbar"] = toolbar_present()
        registry = QgsApplication.processingRegistry()
        seen["provider"] = registry.providerById("saymap") is not None
        seen["algorithm"] = registry.algorithmById("saymap:segmentbytext") is not None
        seen["unloaded"] = qgis.utils.unloadPlugin("saymap")
        QgsApplication.processEvents()
        seen["toolbar_after_unload"] = toolbar_present()
        seen["provider_after_unload"] = registry.providerById("saymap") is not None
    except Exception:  # report anything to the test, which fails on it
        seen["error"] = traceback.format_exc()
    with open(RESULT, "w", encoding="utf-8") as fh:
        json.dump(seen, fh)
    QTimer.singleShot(200, QgsApplication.instance().quit)


QTimer.singleShot(500, check)
