"""The plugin's settings, kept in QgsSettings under `saymap/`, as one typed value."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from qgis.core import QgsSettings

from .paths import default_data_dir, default_engine_python

PREFIX = "saymap/"
OUTPUT_GEOPACKAGE = "gpkg"  # a GeoPackage in the results folder, kept
OUTPUT_TEMPORARY = "memory"  # a temporary layer: gone when QGIS closes unless saved
HISTORY_KEY = PREFIX + "prompt_history"
HISTORY_SIZE = 20


@dataclass(frozen=True)
class Settings:
    """What a user can set; empty strings and zeros mean "let SayMap choose"."""

    engine_python: str = ""  # empty: the `make setup` .venv or the set-up dialog's venv
    data_dir: str = ""  # empty: SAYMAP_DATA_DIR or the platform's user data folder
    port: int = 0  # 0: any free port
    output_dir: str = ""  # empty: beside the project, else the data folder
    output_mode: str = OUTPUT_GEOPACKAGE  # or OUTPUT_TEMPORARY
    score_labels: bool = False  # label each polygon with its score
    device: str = "auto"
    tile: int = 0  # 0: the model's default
    overlap: int = 0
    threshold: float = 0.5
    export_resolution: float = 0.0  # map units per pixel for non-file rasters; 0: native
    start_timeout_s: int = 120

    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    def resolved_engine_python(self) -> Path | None:
        """The configured Python, else the default engine environment if one exists."""
        if self.engine_python:
            return Path(self.engine_python)
        return default_engine_python(self.resolved_data_dir())


def load_settings() -> Settings:
    store = QgsSettings()
    values = {}
    for f in fields(Settings):
        default = f.default
        raw = store.value(PREFIX + f.name, default)
        try:
            values[f.name] = _typed(raw, default)
        except (TypeError, ValueError):
            values[f.name] = default
    return Settings(**values)


def _typed(raw: object, default: object) -> object:
    """A stored value as the field's type (QSettings gives back "false" for False)."""
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("true", "1", "yes")
    return type(default)(raw)


def save_settings(settings: Settings) -> None:
    store = QgsSettings()
    for f in fields(Settings):
        store.setValue(PREFIX + f.name, getattr(settings, f.name))


def update_settings(**changes: object) -> Settings:
    """Change a few values and save; returns the new settings."""
    settings = replace(load_settings(), **changes)
    save_settings(settings)
    return settings


def load_history() -> list[str]:
    value = QgsSettings().value(HISTORY_KEY, [])
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value or []]


def remember_prompt(prompt: str) -> list[str]:
    """Put a prompt at the top of the recent-prompt history (no duplicates, bounded)."""
    history = [prompt] + [p for p in load_history() if p != prompt]
    history = history[:HISTORY_SIZE]
    QgsSettings().setValue(HISTORY_KEY, history)
    return history
