"""The plugin's errors: one root class, each subclass also the builtin it resembles.

QGIS's Python has no `saymap.engine`, so these mirror the engine's style rather than import it.
"""

from __future__ import annotations


class SayMapPluginError(Exception):
    """Root of every error the plugin raises on purpose; its text is shown to the user."""


class EngineUnavailable(SayMapPluginError, ConnectionError):
    """No engine answers: not started, crashed, or the port file is stale."""


class EngineStartError(SayMapPluginError, RuntimeError):
    """The engine process could not be started; the message says what to do."""


class EngineRequestError(SayMapPluginError, ValueError):
    """The engine answered a request with a 4xx/5xx; `detail` is its sentence for a person.

    The text is the sentence alone: the status is for code (messages.py), not for the user."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class JobFailed(SayMapPluginError, RuntimeError):
    """The engine ran the job and it ended in the failed state."""


class JobCancelled(SayMapPluginError, RuntimeError):
    """The job was cancelled before it finished."""


class RasterExportError(SayMapPluginError, OSError):
    """A non-file raster layer could not be written to a temporary GeoTIFF."""


class AreaError(SayMapPluginError, ValueError):
    """The chosen area cannot be used (no selection, empty extent, no overlap)."""


class PromptError(SayMapPluginError, ValueError):
    """The prompt box holds nothing to segment (the engine judges everything else)."""
