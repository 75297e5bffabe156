"""The version lives in the plugin's metadata.txt; everything else reads it from there."""

from __future__ import annotations

import configparser
from importlib import metadata
from pathlib import Path

_METADATA = Path(__file__).resolve().parents[1] / "metadata.txt"


def _read_version() -> str:
    if _METADATA.is_file():
        parser = configparser.ConfigParser()
        parser.read(_METADATA, encoding="utf-8")
        return parser["general"]["version"]
    return metadata.version("saymap")  # installed from a wheel: metadata.txt is not beside us


__version__ = _read_version()
