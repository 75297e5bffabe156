"""What moved between Qt 5 (QGIS 3) and Qt 6 (QGIS 4), imported from where each one has it.

Enums need no shim: the plugin writes them fully scoped (`Qt.ItemDataRole.UserRole`), which
PyQt5 5.15 and PyQt6 both accept (tests/plugin/test_qt6_ready.py keeps it so).
"""

from __future__ import annotations

try:  # Qt 6 moved QAction to QtGui
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt 5 has it in QtWidgets only
    from qgis.PyQt.QtWidgets import QAction

__all__ = ["QAction"]
