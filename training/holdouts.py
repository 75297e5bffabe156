"""The fixed real-imagery hold-outs: areas of ../shared/data/real that training never sees.

Each labelled georeferenced source keeps its east strip (the last 25 % of the columns of
every raster) back; dubai_landcover, which is not georeferenced, keeps one whole tile folder
back. The scorecard (training/scorecard.py) scores only these areas; every dataset built
here (recipes, the trainer, the wizard's train jobs) drops chips that touch them, matched by
the raster's folder and file name, so a copy of the shared data elsewhere is covered too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rasterio.windows import Window

EAST_FRACTION = 0.25  # share of columns kept back at the east edge of each raster
DUBAI_HOLDOUT_TILE = "tile_7"  # the last tile folder: whole scenes the model never saw


def default_data_root() -> Path:
    """../shared/data/real beside the project checkout (where CI and sessions have it)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@dataclass(frozen=True)
class RealSource:
    """One labelled source: its rasters (relative to the data root), labels and classes."""

    name: str
    rasters: tuple[str, ...]
    labels: str
    classes: tuple[str, ...]
    class_field: str | None = "class"
    class_name: str | None = None
    kind: str = "layer"  # "layer" (raster + polygon layer) or "dubai" (image + colour mask)
    note: str = ""


SOURCES: tuple[RealSource, ...] = (
    RealSource(
        "kampala",
        ("kampala/kampala_west_rgb.tif",),
        "kampala/kampala_west_buildings.geojson",
        ("building",),
    ),
    RealSource(
        "hot_zanzibar",
        ("hot_zanzibar/zanzibar_north_rgb.tif", "hot_zanzibar/zanzibar_south_rgb.tif"),
        "hot_zanzibar/zanzibar_buildings.geojson",
        ("building",),
    ),
    RealSource(
        "hot_kathmandu",
        ("hot_kathmandu/kathmandu_ne_rgb.tif", "hot_kathmandu/kathmandu_sw_rgb.tif"),
        "hot_kathmandu/kathmandu_buildings.geojson",
        ("building",),
        note="some buildings are not labelled: false positives there are right",
    ),
    RealSource(
        "hot_nairobi",
        ("hot_nairobi/nairobi_ne_rgb.tif", "hot_nairobi/nairobi_sw_rgb.tif"),
        "hot_nairobi/nairobi_buildings.geojson",
        ("building",),
        note="NE block: footprints sit 1-3 m off the roofs (reported as its own row)",
    ),
    RealSource(
        "spacenet_atlanta",
        ("spacenet_atlanta/sample_geotiff.tif",),
        "spacenet_atlanta/geotiff_labels.geojson",
        ("building",),
        class_field=None,
        class_name="building",
        note="16-bit panchromatic, off-nadir, houses under canopy",
    ),
    RealSource(
        "neon_osbs",
        ("neon_osbs/OSBS_029.tif",),
        "neon_osbs/OSBS_029_tree_boxes_epsg32617_DERIVED.geojson",
        ("tree",),
        class_field=None,
        class_name="tree",
        note="labels are boxes around crowns, which caps IoU",
    ),
    RealSource(
        "dubai_landcover",
        (),
        "dubai_landcover/mask_colours_DERIVED.json",
        ("building", "road", "water", "vegetation"),
        class_field=None,
        kind="dubai",
        note="not georeferenced, ground resolution not stated: scored at native resolution",
    ),
)
SOURCE_BY_NAME = {s.name: s for s in SOURCES}


def _key(path: str | os.PathLike[str]) -> str:
    """'kampala/kampala_west_rgb.tif' for any path to that file (folder + file name)."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


_HELD_RASTERS = {_key(r) for s in SOURCES for r in s.rasters}


def is_holdout_raster(path: str | os.PathLike[str]) -> bool:
    """True for a raster of the shared real sources, whose east strip is kept back."""
    return _key(path) in _HELD_RASTERS


def holdout_window(width: int, height: int) -> Window:
    """The kept-back east strip of a raster of this size, in its own pixel grid."""
    col = round(width * (1.0 - EAST_FRACTION))
    return Window(col, 0, width - col, height)


def holdout_columns(path: str | os.PathLike[str], native_width: int) -> int | None:
    """First native column of the kept-back strip, or None for a raster with no hold-out."""
    if not is_holdout_raster(path):
        return None
    return int(holdout_window(native_width, 1).col_off)


def is_dubai_holdout(path: str | os.PathLike[str]) -> bool:
    """True for an image or mask of the kept-back Dubai tile folder."""
    return DUBAI_HOLDOUT_TILE in Path(path).parts


def dubai_images(base: Path, *, holdout: bool) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of the dubai_landcover folder `base`: the hold-out tile, or every
    other tile."""
    pairs = []
    for tile in sorted(p for p in base.glob("tile_*") if p.is_dir()):
        if (tile.name == DUBAI_HOLDOUT_TILE) != holdout:
            continue
        for image in sorted((tile / "images").glob("*.jpg")):
            mask = tile / "masks" / (image.stem + ".png")
            if mask.is_file():
                pairs.append((image, mask))
    return pairs


def sources(names: Iterable[str] | None = None) -> list[RealSource]:
    if names is None:
        return list(SOURCES)
    unknown = sorted(set(names) - set(SOURCE_BY_NAME))
    if unknown:
        raise ValueError(
            f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCE_BY_NAME)}"
        )
    return [SOURCE_BY_NAME[n] for n in names]
