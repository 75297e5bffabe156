"""SayMap: segment remote-sensing rasters from a sentence (QGIS plugin).

This package runs inside QGIS's Python and imports only PyQt5, qgis and the standard
library; the engine (torch) runs in its own process and is reached over HTTP.
"""

from __future__ import annotations


def classFactory(iface: object) -> object:
    from .plugin import SayMapPlugin

    return SayMapPlugin(iface)
