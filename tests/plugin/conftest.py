"""QGIS for the plugin's tests: a real QgsApplication (headless), the plugin assembled as
`make package` lays it out, and a real engine process (`saymap serve` from the engine's venv).

These tests run in QGIS's Python (`.venv-qgis`, made from /usr/bin/python3 with
--system-site-packages), never in the engine's: the two only meet over HTTP, as on a
user's machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

from qgis.testing import start_app

QGIS_APP = start_app()  # before pytest-qt's qapp, which then reuses it
sys.path.append("/usr/share/qgis/python/plugins")  # QGIS's `processing` package

from osgeo import gdal  # noqa: E402
from qgis.core import QgsProject  # noqa: E402
from qgis.gui import QgsMapCanvas, QgsMessageBar  # noqa: E402
from qgis.PyQt.QtCore import QObject, pyqtSignal  # noqa: E402
from qgis.PyQt.QtWidgets import QAction, QMainWindow, QToolBar  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENGINE_PYTHON = ROOT / ".venv" / "bin" / "python"
TEST_MODEL = "plugin-test-tiny"
TEST_CLASSES = ["car", "building", "storage tank"]
# Real rasters from ../shared/data/real (see its README): small ones keep tests fast.
HRO = "hro_colorado/201404_13SED190110_201404_0x1500m_CL_1.tif"  # 383x232, EPSG:26913
KAMPALA = "kampala/kampala_west_rgb.tif"  # 2048x2048, EPSG:3857


def _load_script(name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package_plugin = _load_script("package_plugin")


# -- the plugin, laid out as the zip lays it out ---------------------------------------------
@pytest.fixture(scope="session")
def plugins_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plugins folder holding `saymap/` as `make package` assembles it; on sys.path."""
    folder = tmp_path_factory.mktemp("plugins")
    package_plugin.assemble(folder)
    sys.path.insert(0, str(folder))
    import qgis.utils

    qgis.utils.plugin_paths.insert(0, str(folder))
    qgis.utils.updateAvailablePlugins()
    return folder


class IfaceStandIn(QObject):
    """The part of QgisInterface the plugin calls, made of real QGIS widgets.

    The QGIS desktop itself cannot run inside pytest; test_package_install.py loads the
    plugin into the real desktop (under Xvfb) instead.
    """

    currentLayerChanged = pyqtSignal(object)  # as QGIS's Layers panel emits it

    def __init__(self) -> None:
        super().__init__()
        self.window = QMainWindow()
        self.canvas = QgsMapCanvas(self.window)
        self.window.setCentralWidget(self.canvas)
        self.bar = QgsMessageBar(self.window)
        self.menus: dict[str, list[QAction]] = {}
        self.window.resize(1000, 700)
        self.active_layer = None
        self.properties_shown: list[tuple[object, str]] = []  # showLayerProperties calls

    def activeLayer(self) -> object:
        return self.active_layer

    def setActiveLayer(self, layer: object) -> bool:
        """What selecting a layer in the Layers panel does."""
        self.active_layer = layer
        self.currentLayerChanged.emit(layer)
        return True

    def showLayerProperties(self, layer: object, page: str = "") -> None:
        self.properties_shown.append((layer, page))

    def mainWindow(self) -> QMainWindow:
        return self.window

    def mapCanvas(self) -> QgsMapCanvas:
        return self.canvas

    def messageBar(self) -> QgsMessageBar:
        return self.bar

    def addToolBar(self, toolbar: QToolBar) -> QToolBar:
        self.window.addToolBar(toolbar)
        return toolbar

    def addPluginToRasterMenu(self, name: str, action: QAction) -> None:
        self.menus.setdefault(name, []).append(action)

    def removePluginRasterMenu(self, name: str, action: QAction) -> None:
        self.menus[name].remove(action)
        if not self.menus[name]:
            del self.menus[name]


@pytest.fixture
def iface() -> Iterator[IfaceStandIn]:
    import qgis.utils

    stand_in = IfaceStandIn()
    previous, qgis.utils.iface = qgis.utils.iface, stand_in
    yield stand_in
    qgis.utils.iface = previous
    stand_in.bar.clearWidgets()
    stand_in.window.close()
    stand_in.window.deleteLater()


@pytest.fixture
def project() -> Iterator[QgsProject]:
    project = QgsProject.instance()
    project.clear()
    yield project
    project.clear()


@pytest.fixture
def plugin(plugins_dir: Path, iface: IfaceStandIn, project: QgsProject) -> Iterator[object]:
    """The plugin started the way QGIS starts it (qgis.utils), unloaded afterwards."""
    import qgis.utils

    assert qgis.utils.loadPlugin("saymap")
    assert qgis.utils.startPlugin("saymap"), "startPlugin failed (see the log above)"
    instance = qgis.utils.plugins["saymap"]
    yield instance
    assert qgis.utils.unloadPlugin("saymap")


@pytest.fixture
def settings_for(plugins_dir: Path) -> Iterator[object]:
    """Set the plugin's settings for one test (the QgsSettings file is per test session)."""
    from saymap.settings import Settings, save_settings

    def apply(**values: object) -> Settings:
        settings = Settings(**values)
        save_settings(settings)
        return settings

    yield apply
    save_settings(Settings())


@pytest.fixture
def no_crs_raster(real_data: Path, tmp_path: Path) -> Path:
    """HRO's pixels with the CRS taken out of the file (a scan, a drone mosaic without one)."""
    target = tmp_path / "no_crs.tif"
    gdal.Translate(str(target), str(real_data / HRO))
    dataset = gdal.Open(str(target), gdal.GA_Update)
    dataset.SetProjection("")
    dataset = None
    assert not gdal.Open(str(target)).GetProjection()
    return target


# -- a real engine -----------------------------------------------------------------------------
def engine_available() -> str | None:
    """Why the engine can't run here, or None."""
    if not ENGINE_PYTHON.is_file():
        return f"the engine venv {ENGINE_PYTHON} is missing (run `make setup`)"
    if not (ROOT / "engine" / "commands" / "serve.py").is_file():
        return "the engine has no `serve` command in this checkout"
    return None


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint folder of the engine's `tiny` configuration with random weights,
    written by the engine's own code in its own venv: the pipeline runs for real, only the
    segmentation quality is not under test."""
    reason = engine_available()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("models")
    code = (
        "import sys, torch\n"
        "from saymap.engine.model import SaymapConfig, SaymapModel, save_model\n"
        "torch.manual_seed(0)\n"
        "model = SaymapModel(SaymapConfig.named('tiny'))\n"
        f"card = {{'name': {TEST_MODEL!r}, 'classes': {TEST_CLASSES!r}, 'note': 'random'}}\n"
        "print(save_model(model, sys.argv[1], card))\n"
    )
    subprocess.run(
        [str(ENGINE_PYTHON), "-c", code, str(base / TEST_MODEL)],
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        timeout=300,
    )
    return base / TEST_MODEL


def install_model(data_dir: Path, model: Path) -> None:
    target = data_dir / "models" / model.name
    if not target.exists():
        shutil.copytree(model, target)
    (data_dir / "active_model").write_text(model.name + "\n")


@dataclass
class EngineProcess:
    data_dir: Path
    process: subprocess.Popen
    info: dict
    log: object

    @property
    def token(self) -> str:
        return Path(self.info["token_path"]).read_text().strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


def start_engine(data_dir: Path, model: Path | None, timeout: float = 180.0) -> EngineProcess:
    """`saymap serve --port 0` from the engine venv; returns once the port file names it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if model is not None:
        install_model(data_dir, model)
    env = {
        **os.environ,
        "SAYMAP_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(data_dir / "engine-test.log", "wb")  # noqa: SIM115 (lives as long as the engine)
    process = subprocess.Popen(
        [str(ENGINE_PYTHON), "-m", "saymap.engine.cli", "serve", "--port", "0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data_dir,
    )
    deadline = time.monotonic() + timeout
    port_file = data_dir / "engine.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(
                f"the engine exited ({process.returncode}): "
                + (data_dir / "engine-test.log").read_text()[-2000:]
            )
        if port_file.is_file():
            try:
                info = json.loads(port_file.read_text())
            except ValueError:
                info = {}
            if info.get("pid") == process.pid:
                return EngineProcess(data_dir, process, info, log)
        time.sleep(0.2)
    process.kill()
    log.close()
    raise RuntimeError("the engine did not write its port file in time")


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[EngineProcess]:
    """One engine for the session, found by the plugin through its port file."""
    running = start_engine(tmp_path_factory.mktemp("engine-data"), tiny_model)
    yield running
    running.stop()


# -- an engine per test module that trains (test_wizard*.py) ---------------------------------
@pytest.fixture(scope="module")
def train_engine(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> Iterator[EngineProcess]:
    """An engine of its own: these tests register models and change the active one."""
    running = start_engine(tmp_path_factory.mktemp("train-engine"), tiny_model)
    # The engine preloads the active model in a thread; a train job that imports
    # transformers at the same moment can hit transformers' lazy-import race
    # ("cannot import name 'AutoModel"), so wait for the preload to finish first.
    deadline = time.monotonic() + 180
    while not engine_get(running, "/v1/health")["models_loaded"]:
        assert time.monotonic() < deadline, "the engine did not load its model"
        time.sleep(0.5)
    yield running
    running.stop()


def engine_get(engine: EngineProcess, path: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"http://127.0.0.1:{engine.info['port']}{path}")
    request.add_header("Authorization", f"Bearer {engine.token}")
    with opener.open(request, timeout=10) as response:
        return json.load(response)
