"""The SayMap plugin object: builds the toolbar, menu and Processing provider on initGui,
and takes every one of them away again on unload."""

from __future__ import annotations

import contextlib
from pathlib import Path

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import QObject, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QIcon

from .about_dialog import AboutDialog
from .call_task import call_in_background, detach_all
from .engine_blocking import started_here, stop_started_engines
from .engine_client import Endpoint, EngineClient, ModelList
from .engine_launcher import EngineConnection
from .message_bar import MessageBoard
from .paths import HELP_URL
from .provider import SayMapProvider
from .qt_compat import QAction
from .runner import SegmentRunner
from .settings import load_history, load_settings
from .settings_dialog import SettingsDialog
from .setup_dialog import SetupDialog
from .toolbar import SayMapToolbar, theme_icon

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
        self.about_dialog: AboutDialog | None = None
        self.wizard: object | None = None
        self.board = MessageBoard(iface.messageBar)

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
            board=self.board,
        )
        self.toolbar.run_requested.connect(self.runner.run)
        self.toolbar.cancel_requested.connect(self.runner.cancel)
        self.toolbar.settings_requested.connect(self.open_settings)
        self.toolbar.finetune_requested.connect(self.open_wizard)
        self.toolbar.input_error.connect(self._input_error)
        self.iface.currentLayerChanged.connect(self.toolbar.follow_layer)
        self.toolbar.follow_layer(self.iface.activeLayer())
        for icon, text, slot in (
            (QIcon(str(ICON)), "SayMap settings…", self.open_settings),
            (QIcon(str(ICON)), "Set up engine…", self.open_setup),
            (theme_icon("/mActionHelpContents.svg"), "SayMap help", self.open_help),
            (theme_icon("/mActionPropertiesWidget.svg"), "About SayMap…", self.open_about),
        ):
            action = QAction(icon, text, window)
            action.triggered.connect(slot)
            self.iface.addPluginToRasterMenu(MENU, action)
            self.actions.append(action)

    def unload(self) -> None:
        if self.runner is not None:
            self.runner.shutdown()
        detach_all()
        if self.toolbar is not None:
            with contextlib.suppress(TypeError):  # never connected (initGui failed half-way)
                self.iface.currentLayerChanged.disconnect(self.toolbar.follow_layer)
        dialogs = (self.settings_dialog, self.setup_dialog, self.about_dialog, self.wizard)
        for dialog in dialogs:
            if dialog is not None:
                dialog.reject()
                _discard(dialog)
        self.settings_dialog = self.setup_dialog = self.about_dialog = self.wizard = None
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
        self.board.clear()  # only the messages still shown: the user may have closed some
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
            self.settings_dialog.engine_python_changed.connect(self._engine_python_changed)
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

    def open_about(self) -> None:
        if self.about_dialog is None:
            self.about_dialog = AboutDialog(self.connection, self.iface.mainWindow())
            self.about_dialog.finished.connect(self._about_closed)
        self.about_dialog.show()
        self.about_dialog.raise_()

    def _about_closed(self) -> None:
        if self.about_dialog is not None:
            self.about_dialog.deleteLater()
            self.about_dialog = None

    def open_help(self) -> None:
        QDesktopServices.openUrl(QUrl(HELP_URL))

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
        self.board.say(
            message,
            Qgis.MessageLevel.Critical,
            buttons=[("Set up engine…", self.open_setup), ("Settings", self.open_settings)],
            title="SayMap engine",
        )

    def _input_error(self, message: str) -> None:
        self.board.say(message, Qgis.MessageLevel.Warning, duration=6)

    # -- the engine Python changed in Settings ---------------------------------------------------
    def _engine_python_changed(self, before: Path | None, after: Path | None) -> None:
        """Offer to restart the engine QGIS started, so the next run uses the new Python; an
        engine started elsewhere is the user's to stop, and the message says so."""
        connection = self.connection
        if connection is None:
            return
        running = connection.running_python
        if running is not None:
            self.board.say(
                f"The engine Python is now {after}, but the running engine uses {running}. "
                "Restart it to use the new one?",
                Qgis.MessageLevel.Warning,
                buttons=[("Restart the engine", self.restart_engine)],
                title="SayMap engine",
            )
            return

        def elsewhere(endpoint: Endpoint) -> None:
            if started_here(endpoint.pid):  # by a Processing run: QGIS's own, so restart it
                self.board.say(
                    f"The engine Python is now {after}, but the running engine uses the old "
                    "one. Restart it to use the new one?",
                    Qgis.MessageLevel.Warning,
                    buttons=[("Restart the engine", self.restart_engine)],
                    title="SayMap engine",
                )
                return
            pid = f" (process {endpoint.pid})" if endpoint.pid else ""
            self.board.say(
                f"The engine Python is now {after}, but an engine QGIS did not start is "
                f"running{pid} and keeps being used. Stop it, and the next run starts one "
                "with the new Python.",
                Qgis.MessageLevel.Warning,
                title="SayMap engine",
            )

        connection.probe(elsewhere, lambda _reason: None)

    def restart_engine(self) -> None:
        """Stop the engines QGIS started and start one with the engine Python of Settings."""
        if self.connection is None:
            return

        def ready(_endpoint: Endpoint) -> None:
            self.board.say(
                f"The SayMap engine restarted with {load_settings().resolved_engine_python()}.",
                Qgis.MessageLevel.Success,
            )

        stop_started_engines()
        self.connection.restart(ready, self.show_engine_problem)

    # -- keeping the toolbar's completions in step with the engine ---------------------------
    def _engine_started(self, endpoint: Endpoint) -> None:
        client = EngineClient(endpoint)
        call_in_background(
            "SayMap: model classes", client.models, self._show_classes, lambda _msg: None
        )

    def _show_classes(self, models: ModelList) -> None:
        if self.runner is not None:
            self.runner.models = models
        if self.toolbar is not None:
            self.toolbar.set_classes(models.active_classes())

    def _settings_changed(self) -> None:
        if self.connection is not None and self.connection.endpoint is not None:
            self._engine_started(self.connection.endpoint)


def _discard(obj: QObject) -> None:
    """Detach from the main window now (nothing left behind) and delete soon."""
    obj.setParent(None)
    obj.deleteLater()
