"""The one builder of the engine's segment request, for the toolbar and for Processing.

Both take raster layers (one, or a collection sent as one job) and a box of prompts; what
they send must not drift (the CRS a user gave a file that has none, the device, the tiling
from Settings). The prompts are only
split here: the engine's prompt rules judge them and say why they refuse one, and the plugin
shows that sentence (messages.py) rather than keep rules of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from qgis.core import QgsRasterLayer

from .area import crs_string
from .engine_client import Aoi, SegmentRequest
from .errors import PromptError, SayMapPluginError
from .settings import Settings

PROMPT_SEPARATOR = "; "
EMPTY_PROMPT = "Type what to map into the SayMap prompt box, e.g. “storage tanks”."


def split_prompts(text: str) -> tuple[str, ...]:
    """The prompts in a box: separated by ';' or one per line (Processing's batch mode).

    PromptError only when nothing is typed; every other rule is the engine's."""
    prompts = tuple(p.strip() for p in re.split(r"[;\r\n]", text or "") if p.strip())
    if not prompts:
        raise PromptError(EMPTY_PROMPT)
    return prompts


def join_prompts(prompts: Sequence[str]) -> str:
    """Prompts as one line (history, task title, layer name); split_prompts reads it back."""
    return PROMPT_SEPARATOR.join(prompts)


def engine_crs(layer: QgsRasterLayer, assume_crs: str | None = None) -> str | None:
    """The CRS to tell the engine the raster is in, when its file says none: the one asked
    for (the project's, offered after the engine refused), else the CRS the user set on the
    layer in QGIS. None when the file has its own (the engine reads it there)."""
    if assume_crs:
        return assume_crs
    if not layer.dataProvider().crs().isValid() and layer.crs().isValid():
        return crs_string(layer.crs())
    return None


def collection_crs(layers: Sequence[QgsRasterLayer], assume_crs: str | None = None) -> str | None:
    """engine_crs for several rasters: the engine assumes one CRS for every file without
    its own, so the CRSs set in QGIS on such layers must agree."""
    if assume_crs:
        return assume_crs
    told = {layer.name(): crs for layer in layers if (crs := engine_crs(layer)) is not None}
    if len(set(told.values())) > 1:
        raise SayMapPluginError(
            f"The files of {', '.join(f'“{name}”' for name in told)} have no CRS of their own "
            "and their layers were given different ones in QGIS; SayMap assumes one CRS for "
            "all such files in a run: run them separately."
        )
    return next(iter(told.values()), None)


def segment_request(
    layers: Sequence[QgsRasterLayer],
    rasters: Sequence[str | Path],
    prompts: Sequence[str],
    output: str | Path,
    settings: Settings,
    *,
    aoi: Aoi | None = None,
    assume_crs: str | None = None,
    tile: int | None = None,
    threshold: float | None = None,
    gsd: str | float = "auto",
    overwrite: bool = False,
) -> SegmentRequest:
    """POST /v1/segment's body for `layers` read from the files `rasters` (each layer's own,
    or its export), in the same order. One raster is sent as `raster`, as always; several
    as `rasters`, one collection job. `tile` and `threshold` default to Settings; a tile of
    0 is the model's."""
    if not rasters or len(layers) != len(rasters):
        raise SayMapPluginError("Choose at least one raster layer to segment.")
    files = list(dict.fromkeys(str(path) for path in rasters))  # a file loaded twice: once
    return SegmentRequest(
        raster=files[0] if len(files) == 1 else None,
        rasters=tuple(files) if len(files) > 1 else None,
        prompts=tuple(prompts),
        output=str(output),
        overwrite=overwrite,
        device=settings.device or "auto",
        tile=(settings.tile if tile is None else tile) or None,
        overlap=settings.overlap or None,
        threshold=settings.threshold if threshold is None else threshold,
        aoi=aoi,
        assume_crs=collection_crs(layers, assume_crs),
        gsd=gsd,
    )
