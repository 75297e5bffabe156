"""The wizard's last choices, kept in the project (saved with it in the .qgz), so closing and
reopening the wizard, or QGIS, does not lose the layers, sentences and settings."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import QgsProject

SCOPE = "SayMap"
KEY = "wizard/choices"


def load_choices(project: QgsProject) -> dict[str, Any]:
    """The choices last saved in this project, or {} (none, or unreadable)."""
    text, found = project.readEntry(SCOPE, KEY, "")
    if not found or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def save_choices(project: QgsProject, choices: dict[str, Any]) -> None:
    """Keep `choices` in the project; unchanged choices leave the project unmodified."""
    text = json.dumps(choices, sort_keys=True)
    if project.readEntry(SCOPE, KEY, "")[0] != text:
        project.writeEntry(SCOPE, KEY, text)
