"""Results as layers: where the GeoPackage goes, and how it enters the project: named
"prompt · raster · model", styled from the shipped QML with rounded numbers, at the top of a
visible "SayMap" group. The toolbar, Processing and the wizard all go through here."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from qgis.core import (
    QgsEditorWidgetSetup,
    QgsFeatureRequest,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsProject,
    QgsVectorLayer,
)

from .errors import SayMapPluginError

GROUP_NAME = "SayMap"
STYLE_PATH = Path(__file__).resolve().parent / "styles" / "saymap_result.qml"
ENGINE_FIELDS = ("prompt", "score", "area_m2", "model", "run_id", "created_at", "source")
NAME_SEPARATOR = " · "
# Decimals shown for the engine's float fields (attribute table, identify, forms).
DECIMALS = {"score": 2, "area_m2": 1}
# Marks a layer SayMap added (a custom property, saved with the project), so the wizard never
# offers the plugin's own output as training labels by default.
RESULT_PROPERTY = "saymap/result"


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


def layer_name(
    prompts: Sequence[str],
    raster: str = "",
    model: str = "",
    taken: Iterable[str] = (),
    now: datetime | None = None,
) -> str:
    """ "prompt · raster · model", and "· HH:MM:SS" when a layer already has that name."""
    base = NAME_SEPARATOR.join(part for part in ("; ".join(prompts), raster, model) if part)
    taken = set(taken)
    if base not in taken:
        return base
    stamped = f"{base}{NAME_SEPARATOR}{(now or datetime.now()):%H:%M:%S}"
    name, n = stamped, 1
    while name in taken:
        n += 1
        name = f"{stamped} ({n})"
    return name


def rasters_label(names: Sequence[str]) -> str:
    """The raster part of a result's name: "hro", "hro, kampala", "hro + 2 more"."""
    names = list(names)
    if len(names) <= 2:
        return ", ".join(names)
    return f"{names[0]} + {len(names) - 1} more"


def project_layer_names(project: QgsProject) -> set[str]:
    return {layer.name() for layer in project.mapLayers().values()}


def style_result(layer: QgsVectorLayer, score_labels: bool = False) -> None:
    """The shipped style, score and area rounded where they are shown, and score labels
    only when Settings asks for them."""
    message, ok = layer.loadNamedStyle(str(STYLE_PATH))
    if not ok:
        raise SayMapPluginError(f"The SayMap style could not be applied: {message}")
    for name, decimals in DECIMALS.items():
        index = layer.fields().indexFromName(name)
        if index < 0:
            continue
        config = {
            "Precision": decimals,
            "Step": 10**-decimals,
            "Min": -1e12,
            "Max": 1e12,
            "Style": "SpinBox",
            "AllowNull": True,
        }
        layer.setEditorWidgetSetup(index, QgsEditorWidgetSetup("Range", config))
    layer.setLabelsEnabled(score_labels)
    layer.triggerRepaint()


def saymap_group(project: QgsProject) -> QgsLayerTreeGroup:
    root = project.layerTreeRoot()
    group = root.findGroup(GROUP_NAME)
    return group if group is not None else root.insertGroup(0, GROUP_NAME)


def group_hidden(project: QgsProject) -> bool:
    """Whether the SayMap group exists but is not shown (it, or a group around it, is off)."""
    group = project.layerTreeRoot().findGroup(GROUP_NAME)
    return group is not None and not group.isVisible()


def place_result(layer: QgsVectorLayer, project: QgsProject) -> bool:
    """Put the layer at the top of the SayMap group (moving it there if Processing added it
    elsewhere) and make sure the group shows; True when the group had been hidden."""
    hidden = group_hidden(project)
    layer.setCustomProperty(RESULT_PROPERTY, True)
    if layer.id() not in project.mapLayers():
        project.addMapLayer(layer, False)
    group = saymap_group(project)
    node = project.layerTreeRoot().findLayer(layer.id())
    if node is None:
        group.insertLayer(0, layer)
    elif node.parent() is not group:
        moved = node.clone()
        group.insertChildNode(0, moved)
        node.parent().removeChildNode(node)
        node = moved
    if isinstance(node, QgsLayerTreeLayer):
        node.setItemVisibilityChecked(True)
    group.setItemVisibilityCheckedParentRecursive(True)
    return hidden


def load_result(path: Path, name: str, temporary: bool = False) -> QgsVectorLayer:
    """The engine's GeoPackage as a layer; with `temporary`, copied into a temporary (memory)
    layer and the file removed: what "temporary layer" means in QGIS (kept only if the user
    saves it)."""
    return load_results(path, {"": name}, temporary)[0]


def load_results(
    path: Path, names: Mapping[str, str], temporary: bool = False
) -> list[QgsVectorLayer]:
    """The GeoPackage's layers (its layer name → the name in QGIS; "" or a file of one
    layer: the file itself), as load_result loads one; the file is removed only once every
    layer is copied."""
    sources = []
    for table, name in names.items():
        uri = f"{path}|layername={table}" if table and len(names) > 1 else str(path)
        source = QgsVectorLayer(uri, name, "ogr")
        if not source.isValid():
            raise SayMapPluginError(f"The engine's result {uri} could not be opened as a layer.")
        sources.append(source)
    if not temporary:
        return sources
    copies = [source.materialize(QgsFeatureRequest()) for source in sources]
    for copy, source in zip(copies, sources, strict=True):
        copy.setName(source.name())
    source = None
    sources.clear()  # closes the GeoPackage before it is removed
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.remove(f"{path}{suffix}")
    return copies


def add_result_layer(
    path: Path,
    name: str,
    project: QgsProject,
    *,
    score_labels: bool = False,
    temporary: bool = False,
) -> QgsVectorLayer:
    """Load the engine's GeoPackage as a styled layer at the top of the SayMap group (shown,
    even if it was hidden: check group_hidden first to say so)."""
    layer = load_result(path, name, temporary)
    style_result(layer, score_labels)
    place_result(layer, project)
    return layer


def add_result_layers(
    path: Path,
    names: Mapping[str, str],
    project: QgsProject,
    *,
    score_labels: bool = False,
    temporary: bool = False,
) -> list[QgsVectorLayer]:
    """add_result_layer for each of the GeoPackage's layers (its layer name → the name in
    QGIS), the first of `names` at the top of the SayMap group."""
    layers = load_results(path, names, temporary)
    for layer in reversed(layers):
        style_result(layer, score_labels)
        place_result(layer, project)
    return layers


def is_result_layer(layer: object) -> bool:
    """A SayMap result: marked when it was placed, or (a GeoPackage opened by hand, a project
    saved before the mark existed) carrying the fields the engine writes."""
    if not isinstance(layer, QgsVectorLayer):
        return False
    if str(layer.customProperty(RESULT_PROPERTY, False)).lower() in ("true", "1"):
        return True
    return {"prompt", "score", "run_id"} <= {f.name() for f in layer.fields()}
