"""Find or start the engine from a worker thread (Processing algorithms), where a QProcess
has no event loop: the same command as the toolbar's, run with subprocess, waited on."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable

from .engine_client import Endpoint, EngineClient, read_port_file
from .engine_launcher import diagnose_start_failure, engine_command, missing_python_message
from .errors import EngineStartError, EngineUnavailable
from .settings import Settings

_LOCK = threading.Lock()
_STARTED: list[subprocess.Popen] = []


def find_engine(settings: Settings) -> Endpoint | None:
    """A running engine that answers /v1/health, or None."""
    endpoint = read_port_file(settings.resolved_data_dir())
    if endpoint is None:
        return None
    try:
        EngineClient(endpoint, timeout=5.0).health()
    except EngineUnavailable:
        return None
    return endpoint


def ensure_engine(settings: Settings, is_cancelled: Callable[[], bool] = lambda: False) -> Endpoint:
    """The running engine, or one started now; EngineStartError says what to do."""
    with _LOCK:
        found = find_engine(settings)
        if found is not None:
            return found
        return _start(settings, is_cancelled)


def _start(settings: Settings, is_cancelled: Callable[[], bool]) -> Endpoint:
    python = settings.resolved_engine_python()
    if python is None or not python.is_file():
        raise EngineStartError(missing_python_message(python))
    data_dir = settings.resolved_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = engine_command(python, settings.port, data_dir)
    log_path = data_dir / "engine-processing.log"  # the engine's output, for the user to read
    with open(log_path, "ab") as log:
        start_offset = log.tell()
        try:
            process = subprocess.Popen(
                [command.program, *command.arguments],
                env={**os.environ, **command.environment},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            raise EngineStartError(f"Could not run {python}: {exc}") from exc
    _STARTED.append(process)
    deadline = time.monotonic() + settings.start_timeout_s
    while time.monotonic() < deadline and not is_cancelled():
        if process.poll() is not None:
            with open(log_path, "rb") as log:
                log.seek(start_offset)
                text = log.read().decode("utf-8", "replace")
            raise EngineStartError(
                diagnose_start_failure(python, settings.port, text, process.returncode)
            )
        endpoint = read_port_file(data_dir)
        if endpoint is not None and endpoint.pid == process.pid:
            try:
                EngineClient(endpoint, timeout=5.0).health()
            except EngineUnavailable:
                pass
            else:
                return endpoint
        time.sleep(0.25)
    process.terminate()
    raise EngineStartError("The SayMap engine did not answer in time (or the run was cancelled).")


def started_here(pid: int | None) -> bool:
    """Whether the engine with this process id is one this module started and still runs."""
    return pid is not None and any(p.pid == pid and p.poll() is None for p in _STARTED)


def stop_started_engines() -> None:
    """Stop the engines this module started (plugin unload)."""
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(2)
