"""The SayMap plugin object: builds the toolbar, menu and Processing provider on initGui,
and takes every one of them away again on unload."""

from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import QObject
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QPushButton

from .call_task import call_in_background, detach_all
from .engine_blocking import stop_started_engines
from .engine_client import Endpoint, EngineClient, ModelList
from .engine_launcher import EngineConnection
from .provider import SayMapProvider
from .runner import SegmentRunner
from .settings import load_history, load_settings
from .settings_dialog import SettingsDialog
from .setup_dialog import SetupDialog
from .toolbar import SayMapToolbar

MENU = "&SayMap"
ICON = Path(__file__).resolve().parent / "icon.png"


class SayMapPlugin:
    def __init__(self, iface: object) -> None:
        self.iface = iface
        self.provider: SayMapProvider | None = None
        self.toolbar: SayMapToolbar | None = None
        self.connection: EngineConnection | None = None
        self.runner: SegmentRunner | None = None
        self.actions: list[QAction] = []
        self.settings_dialog: SettingsDialog | None = None
        self.setup_dialog: SetupDialog | None = None
        self.wizard: object | None = None
        self._messages: list[object] = []

    # -- QGIS entry points -----------------------------------------------------------------
    def initProcessing(self) -> None:
        if self.provider is None:
            self.provider = SayMapProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        window = self.iface.mainWindow()
        self.connection = EngineConnection(load_settings, window)
        self.connection.started.connect(self._engine_started)
        self.toolbar = SayMapToolbar(window)
        self.toolbar.set_history(load_history())
        self.iface.addToolBar(self.toolbar)
        self.runner = SegmentRunner(
            self.iface,
            self.connection,
            self.toolbar,
            load_settings,
            self.show_engine_problem,
            window,
        )
        self.toolbar.run_requested.connect(self.runner.run)
        self.toolbar.cancel_requested.connect(self.runner.cancel)
        self.toolbar.settings_requested.connect(self.open_settings)
        self.toolbar.finetune_requested.connect(self.open_wizard)
        self.toolbar.input_error.connect(self._input_error)
        for text, slot in (
            ("SayMap settings…", self.open_settings),
            ("Set up engine…", self.open_setup),
        ):
            action = QAction(QIcon(str(ICON)), text, window)
            action.triggered.connect(slot)
            self.iface.addPluginToRasterMenu(MENU, action)
            self.actions.append(action)

    def unload(self) -> None:
        if self.runner is not None:
            self.runner.shutdown()
        detach_all()
        for dialog in (self.settings_dialog, self.setup_dialog, self.wizard):
            if dialog is not None:
                dialog.reject()
                _discard(dialog)
        self.settings_dialog = self.setup_dialog = self.wizard = None
        if self.connection is not None:
            self.connection.stop()
            _discard(self.connection)
        if self.runner is not None:
            _discard(self.runner)
        stop_started_engines()
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            action.deleteLater()
        self.actions = []
        for item in self._messages:
            self.iface.messageBar().popWidget(item)
        self._messages = []
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            _discard(self.toolbar)
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
        self.provider = self.toolbar = self.connection = self.runner = None

    # -- dialogs and messages --------------------------------------------------------------
    def open_settings(self) -> None:
        if self.settings_dialog is None:
            self.settings_dialog = SettingsDialog(
                self.connection, self.open_setup, self.iface.mainWindow()
            )
            self.settings_dialog.accepted.connect(self._settings_changed)
            self.settings_dialog.finished.connect(self._settings_closed)
        self.settings_dialog.show()
        self.settings_dialog.raise_()

    def _settings_closed(self) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.deleteLater()
            self.settings_dialog = None

    def open_setup(self) -> None:
        if self.setup_dialog is None:
            self.setup_dialog = SetupDialog(self.connection, self.iface.mainWindow())
        self.setup_dialog.show()
        self.setup_dialog.raise_()

    def open_wizard(self) -> None:
        """The fine-tune wizard, once an engine answers (it needs the engine's models)."""
        from .wizard import FineTuneWizard

        def ready(endpoint: Endpoint) -> None:
            self.wizard = FineTuneWizard(self.iface, endpoint, self.iface.mainWindow())
            self.wizard.model_activated.connect(self._show_classes)
            self.wizard.problem.connect(self._input_error)
            self.wizard.show()

        self.connection.ensure(ready, self.show_engine_problem)

    def show_engine_problem(self, message: str) -> None:
        """A message bar that says what is wrong and offers the way out."""
        bar = self.iface.messageBar()
        widget = bar.createMessage("SayMap engine", message)
        setup = QPushButton("Set up engine…", widget)
        setup.clicked.connect(self.open_setup)
        settings = QPushButton("Settings", widget)
        settings.clicked.connect(self.open_settings)
        widget.layout().addWidget(setup)
        widget.layout().addWidget(settings)
        self._messages = [m for m in self._messages if _alive(m)]
        self._messages.append(bar.pushWidget(widget, Qgis.Critical))

    def _input_error(self, message: str) -> None:
        self.iface.messageBar().pushMessage("SayMap", message, level=Qgis.Warning, duration=6)

    # -- keeping the toolbar's completions in step with the engine ---------------------------
    def _engine_started(self, endpoint: Endpoint) -> None:
        client = EngineClient(endpoint)
        call_in_background(
            "SayMap: model classes", client.models, self._show_classes, lambda _msg: None
        )

    def _show_classes(self, models: ModelList) -> None:
        if self.toolbar is not None:
            self.toolbar.set_classes(models.active_classes())

    def _settings_changed(self) -> None:
        if self.connection is not None and self.connection.endpoint is not None:
            self._engine_started(self.connection.endpoint)


def _discard(obj: QObject) -> None:
    """Detach from the main window now (nothing left behind) and delete soon."""
    obj.setParent(None)
    obj.deleteLater()


def _alive(item: object) -> bool:
    try:
        item.objectName()
    except RuntimeError:  # the bar already deleted it (closed by the user)
        return False
    return True
