"""Results as layers: where the GeoPackage goes, and how it enters the project (a "SayMap"
group, named after the prompt, styled from the shipped QML)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from qgis.core import QgsLayerTreeGroup, QgsProject, QgsVectorLayer

from .errors import SayMapPluginError

GROUP_NAME = "SayMap"
STYLE_PATH = Path(__file__).resolve().parent / "styles" / "saymap_result.qml"
ENGINE_FIELDS = ("prompt", "score", "area_m2", "model", "run_id", "created_at", "source")


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe version of a prompt ("Red roofs!" -> "red_roofs")."""
    cleaned = re.sub(r"[^0-9a-zA-Z]+", "_", text.strip().lower()).strip("_")
    return cleaned[:limit].rstrip("_") or "result"


def results_folder(setting: str, project: QgsProject, fallback: Path) -> Path:
    """The folder from Settings, else beside the saved project, else `fallback`."""
    if setting:
        return Path(setting)
    project_dir = project.absolutePath()
    if project_dir:
        return Path(project_dir) / "saymap_results"
    return fallback


def result_path(folder: Path, prompts: list[str] | tuple[str, ...], now: datetime) -> Path:
    """A new GeoPackage path that does not exist yet (never overwrite a user's file)."""
    base = f"{slug(' '.join(prompts))}_{now:%Y%m%d-%H%M%S}"
    candidate = folder / f"{base}.gpkg"
    n = 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{base}_{n}.gpkg"
    return candidate


def layer_name(prompts: list[str] | tuple[str, ...]) -> str:
    return "; ".join(prompts)


def saymap_group(project: QgsProject) -> QgsLayerTreeGroup:
    root = project.layerTreeRoot()
    group = root.findGroup(GROUP_NAME)
    return group if group is not None else root.insertGroup(0, GROUP_NAME)


def add_result_layer(path: Path, name: str, project: QgsProject) -> QgsVectorLayer:
    """Load the engine's GeoPackage as a styled layer at the top of the SayMap group."""
    layer = QgsVectorLayer(str(path), name, "ogr")
    if not layer.isValid():
        raise SayMapPluginError(f"The engine's result {path} could not be opened as a layer.")
    message, ok = layer.loadNamedStyle(str(STYLE_PATH))
    if not ok:
        raise SayMapPluginError(f"The SayMap style could not be applied: {message}")
    project.addMapLayer(layer, False)
    saymap_group(project).insertLayer(0, layer)
    return layer
