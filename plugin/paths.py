"""Where things are, in the standard library only: the engine's data folder, the engine's
Python, the project's source folder.

The data folder mirrors `platformdirs.user_data_dir("saymap", "saymap")`, which the engine
uses (`saymap.engine.paths.data_dir`); a test checks the two agree.
"""

from __future__ import annotations

import configparser
import json
import os
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
BUILD_INFO = PLUGIN_DIR / "build_info.json"  # written by scripts/package_plugin.py
ENGINE_VENV_NAME = "engine-venv"
# The plugin's guide, shipped in the plugin folder: the same version as the code, offline.
HELP_PATH = PLUGIN_DIR / "README.md"
HELP_URL = HELP_PATH.as_uri()


def plugin_metadata() -> dict[str, str]:
    """metadata.txt's [general] section: in the plugin folder (installed from the zip), or at
    the root of the source folder around plugin/ (a checkout)."""
    for path in (PLUGIN_DIR / "metadata.txt", PLUGIN_DIR.parent / "metadata.txt"):
        parser = configparser.ConfigParser(interpolation=None)
        try:
            if parser.read(path, encoding="utf-8") and parser.has_section("general"):
                return dict(parser["general"])
        except configparser.Error:
            continue
    return {}


def default_data_dir() -> Path:
    """The engine's data folder (port file, token, engine venv made by the set-up dialog)."""
    override = os.environ.get("SAYMAP_DATA_DIR")
    if override:
        return Path(override)
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return base / "saymap" / "saymap"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "saymap"
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(xdg) if xdg else home / ".local" / "share") / "saymap"


def venv_python(venv: Path) -> Path:
    """The interpreter inside a virtual environment, on any platform."""
    if sys.platform == "win32":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def build_info() -> dict[str, str]:
    """What `make package` recorded (source folder, version); empty when run from a checkout."""
    try:
        return json.loads(BUILD_INFO.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def is_source_folder(folder: Path) -> bool:
    """A SayMap project checkout: has the pyproject naming the `saymap` distribution."""
    try:
        text = (folder / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return 'name = "saymap"' in text


def source_folder() -> Path | None:
    """The project's source folder: the checkout around this plugin, or the one recorded
    when the zip was built (`make package`), if it still exists."""
    if is_source_folder(PLUGIN_DIR.parent):
        return PLUGIN_DIR.parent
    recorded = build_info().get("source_dir")
    if recorded and is_source_folder(Path(recorded)):
        return Path(recorded)
    return None


def candidate_engine_pythons(data_dir: Path) -> list[Path]:
    """Where an engine environment may already be, best first: the `.venv` that `make setup`
    made in the source folder, then the one the set-up dialog made in the data folder."""
    found = []
    source = source_folder()
    if source is not None:
        found.append(venv_python(source / ".venv"))
    found.append(venv_python(data_dir / ENGINE_VENV_NAME))
    return found


def default_engine_python(data_dir: Path) -> Path | None:
    """The first existing engine Python among the candidates, or None (offer the set-up)."""
    return next((p for p in candidate_engine_pythons(data_dir) if p.is_file()), None)
