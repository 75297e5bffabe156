"""One root error; each subclass also inherits the builtin it resembles (as rasterio does).

Callers may catch `SaymapError` for everything the engine refuses, or the builtin
(`OSError`, `ValueError`) they would catch anyway.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


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


class ReservedPathError(SaymapError, PermissionError):
    """A path names a file in the engine's own data folder (its job database, token...)."""


class DiskFullError(SaymapError, OSError):
    """A write failed because the disk (or the user's quota) is full."""


# What rasterio says when the real reason is in the exception it chained (GDAL's messages).
_SEE_PREVIOUS = "See previous exception for details."
_DISK_FULL_WORDS = ("no space left on device", "disk quota exceeded", "database or disk is full")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and all(exc is not s for s in seen):
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return seen


def explain(exc: BaseException) -> str:
    """The exception's message, with rasterio's "See previous exception for details." replaced
    by those details (GDAL's messages, which name the band, block and what went wrong)."""
    text = str(exc)
    if _SEE_PREVIOUS not in text:
        return text
    details: list[str] = []
    for cause in _chain(exc)[1:]:
        detail = str(cause).strip().rstrip(".")
        if detail and _SEE_PREVIOUS not in str(cause) and not any(detail in d for d in details):
            details.append(detail)  # GDAL repeats the inner message in the outer one
    if not details:
        return text
    head = text.replace(_SEE_PREVIOUS, "").rstrip(" .:")
    return f"{head}: {'; '.join(details)}"


def disk_full(
    exc: BaseException, where: str | None = None, needed_bytes: int | None = None
) -> DiskFullError | None:
    """A DiskFullError saying where, when `exc` is a full disk; else None.

    The system's word for it (ENOSPC, "No space left on device"...) is decisive. GDAL does
    not always pass it on (libtiff prints it and raises "Write error at scanline 0"), so a
    failed write also counts when the disk holding `where` (the file or folder written) has
    less free space than `needed_bytes`, the most the run writes there, or almost none."""
    if isinstance(exc, DiskFullError):
        return exc
    for cause in _chain(exc):
        full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
        if full or any(w in str(cause).lower() for w in _DISK_FULL_WORDS):
            target = getattr(cause, "filename", None) or where
            return DiskFullError(f"the disk is full{_writing(target)}: {_FREE_SOME}")
    if where is None or not any(w in str(c).lower() for c in _chain(exc) for w in _WRITE_WORDS):
        return None
    free = _free_bytes(where)
    if free is None or free >= max(needed_bytes or 0, 1 << 20):
        return None
    need = f"; this run writes up to {_mib(needed_bytes)} there" if needed_bytes else ""
    return DiskFullError(
        f"the disk is full{_writing(where)} ({_mib(free)} free{need}): {_FREE_SOME}"
    )


_WRITE_WORDS = ("write failed", "write error", "cannot write", "i/o error")
_FREE_SOME = (
    "free some space (or choose an output on another disk) and run again; nothing "
    "half-written was kept"
)


def _writing(target: object) -> str:
    return f" writing {target}" if target else ""


def _mib(size: int | None) -> str:
    return f"{(size or 0) / 2**20:.1f} MiB"


def _free_bytes(where: str) -> int | None:
    folder = Path(where)
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
