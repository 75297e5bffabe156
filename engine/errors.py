"""One root error; each subclass also inherits the builtin it resembles (as rasterio does).

Callers may catch `SaymapError` for everything the engine refuses, or the builtin
(`OSError`, `ValueError`) they would catch anyway.
"""

from __future__ import annotations


class SaymapError(Exception):
    """Root of every error the engine raises on purpose; its message is meant for a person."""


class RasterReadError(SaymapError, OSError):
    """The raster is missing, unreadable, or not a raster."""


class CRSError(SaymapError, ValueError):
    """A raster or vector has no usable coordinate reference system."""


class BandError(SaymapError, ValueError):
    """A band map names bands the raster does not have."""


class PromptError(SaymapError, ValueError):
    """The prompt is empty or otherwise unusable."""


class AOIError(SaymapError, ValueError):
    """The area of interest is malformed or does not overlap the raster."""


class OutputError(SaymapError, OSError):
    """The output cannot be written: missing folder, existing file, no permission."""


class CheckpointError(SaymapError, ValueError):
    """A checkpoint folder is missing a file, is corrupt, or does not match its config."""


class DeviceError(SaymapError, RuntimeError):
    """The requested device is not available."""


class OptionError(SaymapError, ValueError):
    """A processing option is out of range: tile size, overlap, threshold, batch size..."""


class DatasetError(SaymapError, ValueError):
    """Training data is malformed: no class field, no overlap, a missing feature id..."""


class Cancelled(SaymapError):
    """Work stopped because the caller asked; nothing half-written was left behind."""


class ModelNotFoundError(SaymapError, LookupError):
    """No registered model has the requested name."""


class AccessError(SaymapError, PermissionError):
    """A setting would expose the engine beyond this user: another host without a token..."""
