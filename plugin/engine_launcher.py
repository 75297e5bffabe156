"""Find a running engine through its port file, or start one with QProcess and wait for
/v1/health. When it cannot start, say what to do (no Python there, packages missing, port
busy) rather than show a traceback.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, pyqtSignal

from .call_task import call_in_background
from .engine_client import Endpoint, EngineClient, Health, read_port_file
from .settings import Settings

LOG_TAG = "SayMap"
POLL_MS = 250
_TAIL_CHARS = 20000


@dataclass(frozen=True)
class EngineCommand:
    program: str
    arguments: tuple[str, ...]
    environment: dict[str, str]


def engine_command(python: Path, port: int, data_dir: Path) -> EngineCommand:
    """How the plugin starts the engine: its own Python, never QGIS's."""
    return EngineCommand(
        program=str(python),
        arguments=("-m", "saymap.engine.cli", "serve", "--port", str(port)),
        environment={
            "SAYMAP_DATA_DIR": str(data_dir),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        },
    )


def missing_python_message(python: Path | None) -> str:
    where = f" at {python}" if python else ""
    return (
        f"No SayMap engine Python{where}. Set the engine Python in SayMap Settings, "
        "or click “Set up engine…” to make an engine environment."
    )


def diagnose_start_failure(python: Path, port: int, stderr: str, exit_code: int | None) -> str:
    """A sentence a person can act on, from what the engine process left on stderr."""
    missing = re.search(r"No module named '([^']+)'", stderr)
    if missing:
        return (
            f"The Python at {python} lacks the SayMap engine (no module '{missing.group(1)}'). "
            "Run `make setup` in the SayMap source folder, or click “Set up engine…”."
        )
    if re.search(r"address already in use|Errno 98|Errno 48|10048", stderr, re.IGNORECASE):
        return (
            f"Port {port} is busy. Set the engine port to 0 (any free port) in SayMap Settings, "
            "or stop the program that uses it."
        )
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = next((line for line in reversed(lines) if line.startswith("saymap: error:")), None)
    last = said or (lines[-1] if lines else "no output")
    code = f" (exit code {exit_code})" if exit_code is not None else ""
    return f"The SayMap engine stopped while starting{code}: {last}"


class EngineConnection(QObject):
    """One engine for the plugin: reuse a running one, or start and own one.

    `ensure(on_ready, on_failed)` never blocks: the health check runs in a task and the
    process is watched by a timer. The engine this object started is stopped by `stop()`.
    """

    started = pyqtSignal(object)  # Endpoint, once an engine answers /v1/health
    failed = pyqtSignal(str)

    def __init__(self, settings_provider: Callable[[], Settings], parent: QObject | None = None):
        super().__init__(parent)
        self._settings = settings_provider
        self.endpoint: Endpoint | None = None
        self.health: Health | None = None
        self.process: QProcess | None = None
        self._waiters: list[tuple[Callable[[Endpoint], None], Callable[[str], None]]] = []
        self._stderr = ""
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._deadline = 0.0
        self._checking = False
        self._python: Path | None = None
        self._port = 0

    def ensure(self, on_ready: Callable[[Endpoint], None], on_failed: Callable[[str], None]):
        """Call `on_ready(endpoint)` once an engine answers, or `on_failed(message)`."""
        self._waiters.append((on_ready, on_failed))
        if len(self._waiters) > 1:
            return  # a connection attempt is already under way
        settings = self._settings()
        found = read_port_file(settings.resolved_data_dir())
        if found is None:
            self._launch(settings)
            return
        self._check(found, on_bad=lambda _msg: self._launch(self._settings()))

    def probe(self, on_found: Callable[[Endpoint], None], on_none: Callable[[str], None]):
        """Whether an engine answers now, without starting one (Settings, About): the one
        the port file names, else the one last known. `on_none(reason)` when none does."""
        endpoint = read_port_file(self._settings().resolved_data_dir()) or self.endpoint
        if endpoint is None:
            on_none("not running: it starts with the first run, or with “Connect / start”")
            return

        def found(health: Health) -> None:
            self.endpoint, self.health = endpoint, health
            on_found(endpoint)

        def gone(message: str) -> None:
            if self.endpoint == endpoint:
                self.forget()
            on_none(message)

        client = EngineClient(endpoint, timeout=5.0)
        call_in_background("SayMap: is the engine running?", client.health, found, gone)

    @property
    def running_python(self) -> Path | None:
        """The Python of the engine this object started and that still runs, else None."""
        process = self.process
        if process is None or process.state() == QProcess.ProcessState.NotRunning:
            return None
        return self._python

    def restart(self, on_ready: Callable[[Endpoint], None], on_failed: Callable[[str], None]):
        """Stop the engine this object started and start a new one from the current settings
        (after the engine Python changed), ignoring any engine the port file names."""
        self.stop()
        self._waiters.append((on_ready, on_failed))
        if len(self._waiters) == 1:
            self._launch(self._settings())

    def _check(self, endpoint: Endpoint, on_bad: Callable[[str], None]) -> None:
        self._checking = True

        def done(health: Health) -> None:
            self._checking = False
            self.endpoint, self.health = endpoint, health
            self._resolve(endpoint, None)

        def bad(message: str) -> None:
            self._checking = False
            on_bad(message)

        client = EngineClient(endpoint, timeout=5.0)
        call_in_background("SayMap: checking the engine", client.health, done, bad)

    def _launch(self, settings: Settings) -> None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self._timer.start()  # already starting: keep watching it
            return
        python = settings.resolved_engine_python()
        if python is None or not python.is_file():
            self._resolve(None, missing_python_message(python))
            return
        data_dir = settings.resolved_data_dir()
        data_dir.mkdir(parents=True, exist_ok=True)
        command = engine_command(python, settings.port, data_dir)
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        for key, value in command.environment.items():
            env.insert(key, value)
        process.setProcessEnvironment(env)
        process.readyReadStandardError.connect(self._read_stderr)
        process.readyReadStandardOutput.connect(self._read_stdout)
        self.process, self._python, self._port, self._stderr = process, python, settings.port, ""
        QgsMessageLog.logMessage(
            f"starting the engine: {command.program} {' '.join(command.arguments)}",
            LOG_TAG,
            Qgis.MessageLevel.Info,
        )
        process.start(command.program, list(command.arguments))
        self._deadline = time.monotonic() + settings.start_timeout_s
        self._timer.start()

    def _read_stderr(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        self._stderr = (self._stderr + text)[-_TAIL_CHARS:]
        for line in text.splitlines():
            QgsMessageLog.logMessage(f"engine: {line}", LOG_TAG, Qgis.MessageLevel.Info)

    def _read_stdout(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        for line in text.splitlines():
            QgsMessageLog.logMessage(f"engine: {line}", LOG_TAG, Qgis.MessageLevel.Info)

    def _poll(self) -> None:
        process = self.process
        if process is None or self._python is None:
            self._timer.stop()
            return
        if process.state() == QProcess.ProcessState.NotRunning:
            self._timer.stop()
            self._read_stderr()
            if process.error() == QProcess.ProcessError.FailedToStart:
                message = f"Could not run {self._python}: {process.errorString()}"
            else:
                message = diagnose_start_failure(
                    self._python, self._port, self._stderr, process.exitCode()
                )
            self.process = None
            self._resolve(None, message)
            return
        if time.monotonic() > self._deadline:
            self._timer.stop()
            self.stop()
            self._resolve(
                None,
                "The SayMap engine did not answer in time; its output is in the "
                "SayMap tab of the log messages panel.",
            )
            return
        if self._checking:
            return
        found = read_port_file(self._settings().resolved_data_dir())
        if found is not None and found.pid == process.processId():
            self._timer.stop()
            self._check(found, on_bad=lambda _msg: self._timer.start())

    def _resolve(self, endpoint: Endpoint | None, message: str | None) -> None:
        waiters, self._waiters = self._waiters, []
        if endpoint is not None:
            self.started.emit(endpoint)
        else:
            self.failed.emit(message or "")
        for on_ready, on_failed in waiters:
            if endpoint is not None:
                on_ready(endpoint)
            else:
                on_failed(message or "")

    def forget(self) -> None:
        """Drop the cached endpoint (after a call found the engine gone)."""
        self.endpoint = None
        self.health = None

    def stop(self) -> None:
        """Stop the engine this object started (not one found running)."""
        self._timer.stop()
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.readyReadStandardError.disconnect()
            process.readyReadStandardOutput.disconnect()
        except TypeError:
            pass
        if process.state() != QProcess.ProcessState.NotRunning:
            process.terminate()
            if not process.waitForFinished(5000):
                process.kill()
                process.waitForFinished(2000)
        process.deleteLater()
        self.endpoint = None
        self.health = None
