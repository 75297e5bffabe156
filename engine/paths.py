"""Where the engine keeps its state: one user data folder, overridable for tests."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from saymap.engine.errors import ReservedPathError

SHIPPED_MODELS = Path(__file__).resolve().parent / "models"
EXPORTS_DIR = "exports"  # where the plugin writes rasters for the engine (see below)
RESULTS_DIR = "results"  # the plugin's default folder for result GeoPackages


def data_dir() -> Path:
    """The engine's data folder (port file, token, job database, user models).

    `SAYMAP_DATA_DIR` overrides it, so tests and several engines can live side by side.
    """
    path = _data_dir_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _data_dir_path() -> Path:
    override = os.environ.get("SAYMAP_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("saymap", "saymap"))


def check_outside_data_dir(path: str | os.PathLike[str], label: str) -> None:
    """ReservedPathError when `path` lies in the engine's data folder: a raster "read" there
    can be its job database (GDAL's SQLite driver deletes the -wal file, and the engine's
    history with it), an output written there can replace its token or a model.

    Its `exports/` and `results/` folders are the exceptions: the plugin writes the rasters
    it hands the engine to the first (a virtual or web layer exported to a GeoTIFF), and its
    result GeoPackages to the second when no other folder is set."""
    folder = os.path.normcase(os.path.realpath(_data_dir_path()))
    try:
        target = os.path.normcase(os.path.realpath(path))
    except (OSError, ValueError):
        return  # not a usable path: the caller's own checks say why
    if any(_within(target, os.path.join(folder, name)) for name in (EXPORTS_DIR, RESULTS_DIR)):
        return
    if _within(target, folder):
        raise ReservedPathError(
            f"the {label} {os.fspath(path)} is inside the engine's data folder {folder}, which "
            "holds its job database, token and models; use a file outside it"
        )


def _within(target: str, folder: str) -> bool:
    return target == folder or target.startswith(folder.rstrip(os.sep) + os.sep)


def user_models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
