"""Run one blocking call (an HTTP request) off the GUI thread and hand the answer back.

A QgsTask's run() works in a worker thread; finished() runs on the GUI thread, so the
callbacks may touch widgets. Errors are the plugin's own (SayMapPluginError) or OSError.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask

from .errors import SayMapPluginError
from .messages import Problem, explain

# Tasks must stay referenced until finished() ran, or Python collects them mid-flight.
_RUNNING: set[CallTask] = set()


def task_problem(
    exc: Exception, expected: tuple[type[Exception], ...] = (SayMapPluginError, OSError)
) -> Problem:
    """What a task's run() reports for `exc`: an expected error in the user's words
    (messages.py), or, for anything else (a bug), a pointer to the SayMap log where its
    traceback now is.

    Called from the `except Exception` at a worker thread's boundary: nothing is lost there.
    """
    if isinstance(exc, expected):
        return explain(exc)
    QgsMessageLog.logMessage(traceback.format_exc(), "SayMap", Qgis.MessageLevel.Critical)
    return Problem("bug", f"SayMap hit a bug ({type(exc).__name__}: {exc}); see the SayMap log.")


def task_error(
    exc: Exception, expected: tuple[type[Exception], ...] = (SayMapPluginError, OSError)
) -> str:
    """task_problem's text."""
    return task_problem(exc, expected).text


class CallTask(QgsTask):
    """Calls `work()` in a worker thread, then `on_done(result)` or `on_error(message)`."""

    def __init__(
        self,
        description: str,
        work: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[str], None],
    ) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self._work = work
        self._on_done = on_done
        self._on_error = on_error
        self._result: Any = None
        self._error = ""

    def run(self) -> bool:
        try:
            self._result = self._work()
        except Exception as exc:  # a worker thread's boundary
            self._error = task_error(exc, (SayMapPluginError, OSError, ValueError))
            return False
        return True

    def detach(self) -> None:
        self._on_done = self._on_error = _ignore

    def finished(self, result: bool) -> None:
        _RUNNING.discard(self)
        if result:
            self._on_done(self._result)
        else:
            self._on_error(self._error or "cancelled")


def detach_all() -> None:
    """Cancel every running call and drop its callbacks (plugin unload: their widgets go)."""
    for task in list(_RUNNING):
        task.detach()
        task.cancel()


def call_in_background(
    description: str,
    work: Callable[[], Any],
    on_done: Callable[[Any], None],
    on_error: Callable[[str], None],
) -> CallTask:
    task = CallTask(description, work, on_done, on_error)
    _RUNNING.add(task)
    QgsApplication.taskManager().addTask(task)
    return task


def _ignore(_value: object) -> None:
    """A callback for a task whose receiver has gone."""
