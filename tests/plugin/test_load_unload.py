"""The plugin loads the way QGIS loads it, and unload leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QEvent
from qgis.PyQt.QtWidgets import QToolBar

from .conftest import IfaceStandIn

BANNED = ("torch", "rasterio", "pyproj", "pyogrio", "numpy", "saymap.engine", "saymap.training")


def test_plugin_loads_toolbar_menu_and_provider(plugin: object, iface: IfaceStandIn) -> None:
    toolbar = iface.window.findChild(QToolBar, "SayMapToolbar")
    assert toolbar is not None and toolbar.isVisibleTo(iface.window)
    names = [a.text() for a in toolbar.actions() if a.text()]
    assert {"Run", "Cancel", "Settings"} <= set(names)
    assert [a.text() for a in iface.menus["&SayMap"]] == [
        "SayMap settings…",
        "Set up engine…",
        "SayMap help",
        "About SayMap…",
    ]
    assert all(not a.icon().isNull() for a in iface.menus["&SayMap"])
    assert all(not a.icon().isNull() for a in toolbar.actions() if a.text())
    provider = QgsApplication.processingRegistry().providerById("saymap")
    assert provider is not None
    assert provider.algorithm("segmentbytext") is not None


def test_unload_leaves_nothing_behind(plugins_dir: Path, iface: IfaceStandIn, project) -> None:
    before_children = {sip.unwrapinstance(c) for c in iface.window.children()}
    assert qgis.utils.loadPlugin("saymap") and qgis.utils.startPlugin("saymap")
    assert iface.window.findChild(QToolBar, "SayMapToolbar") is not None
    assert qgis.utils.unloadPlugin("saymap")
    QgsApplication.processEvents()
    QgsApplication.sendPostedEvents(None, QEvent.DeferredDelete)  # run the deleteLater()s
    assert iface.window.findChild(QToolBar, "SayMapToolbar") is None
    assert iface.menus == {}
    assert QgsApplication.processingRegistry().providerById("saymap") is None
    assert "saymap" not in qgis.utils.active_plugins
    assert not [m for m in sys.modules if m == "saymap" or m.startswith("saymap.")]
    left = [c for c in iface.window.children() if sip.unwrapinstance(c) not in before_children]
    assert left == [], f"objects left on the main window: {left}"


def test_plugin_imports_no_engine_libraries(plugins_dir: Path) -> None:
    """Loading every plugin module pulls in none of torch/rasterio/pyproj/pyogrio/engine."""
    code = (
        "import sys, pkgutil, importlib\n"
        f"sys.path.insert(0, {str(plugins_dir)!r})\n"
        "from qgis.testing import start_app; start_app()\n"
        "import saymap\n"
        "for m in pkgutil.iter_modules(saymap.__path__):\n"
        "    importlib.import_module('saymap.' + m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {BANNED!r} or m in {BANNED!r}]\n"
        "print('BANNED', bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("BANNED"))
    assert line == "BANNED []", line
