"""Where the engine keeps its state: one user data folder, overridable for tests."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

SHIPPED_MODELS = Path(__file__).resolve().parent / "models"


def data_dir() -> Path:
    """The engine's data folder (port file, token, job database, user models).

    `SAYMAP_DATA_DIR` overrides it, so tests and several engines can live side by side.
    """
    override = os.environ.get("SAYMAP_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir("saymap", "saymap"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
