"""One request plan: every input of a segmentation checked once, before any model runs.

The command line, the server's preflight and `segment_raster` all build a `SegmentPlan`
with `plan_segment`; the pipeline (`infer.run_plan`) takes it and checks nothing again. A
plan opens the raster once (its CRS, bands and the 1024 px scaling sample), decides the
working resolution, places the area of interest on that grid and lays the tile grid over it;
the tile reader's open is the only other one. Whether the tile size suits the network's
stride is left to the run, which holds the network. No torch here: the command line and the
server refuse bad input without loading a model.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saymap.engine.aoi import AOI, Region, resolve_region
from saymap.engine.errors import CheckpointError, OptionError
from saymap.engine.limits import check_limits
from saymap.engine.prompt import check_prompts
from saymap.engine.raster import RasterSpec, open_raster
from saymap.engine.resolution import WorkingResolution, parse_gsd, working_spec
from saymap.engine.tiling import TileGrid
from saymap.engine.vectorize import VectorizeOptions

CONFIG_FILE = "config.json"
CARD_FILE = "model_card.json"


@dataclass(frozen=True)
class SegmentOptions:
    tile: int | None = None  # tile side in pixels; None: the model's own tile size
    overlap: int = 64
    batch_size: int = 4
    threshold: float = 0.5
    device: str = "auto"
    bands: tuple[int, ...] | None = None
    assume_crs: str | None = None
    aoi: AOI | None = None
    overwrite: bool = False
    min_area_px: float = 16.0
    max_hole_px: float = 64.0
    simplify_px: float = 1.0
    probabilities_path: str | None = None  # keep the probability GeoTIFF here (else temporary)
    gsd: str | float | None = None  # "auto" (the model card's gsd_m), "native", or metres
    literal: bool = False  # run prompts exactly as typed (no "building" → "all buildings")

    def check(self) -> None:
        """The options that need no raster; overlap against tile is the tile grid's own."""
        check_limits(  # the same caps as the CLI and the API (engine/limits.py)
            tile=self.tile,
            overlap=self.overlap,
            batch_size=self.batch_size,
            min_area_px=self.min_area_px,
        )
        if not 0.0 <= self.threshold < 1.0:
            raise OptionError(f"threshold must be in [0, 1), got {self.threshold}")
        parse_gsd(self.gsd)

    def vectorize_options(self) -> VectorizeOptions:
        return VectorizeOptions(
            threshold=self.threshold,
            min_area_px=self.min_area_px,
            max_hole_px=self.max_hole_px,
            simplify_px=self.simplify_px,
        )


@dataclass(frozen=True)
class ModelFacts:
    """What planning needs from a model: read from its folder, or from the loaded model."""

    name: str
    tile_size: int
    card: dict[str, Any] | None = None

    @classmethod
    def of(cls, model: Any) -> ModelFacts:
        """From a loaded model (anything with the pipeline's `Segmenter` shape)."""
        config, card = model.config, getattr(model, "card", None)
        name = (card or {}).get("name") or config.name  # the card names a trained model
        return cls(str(name), int(config.tile_size), card)

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any], card: dict[str, Any]) -> ModelFacts:
        """From a checkpoint's config.json and model_card.json, as read without torch (the
        model package's own config class would import it with the package)."""
        tile_size = config.get("tile_size")
        if not isinstance(tile_size, int) or tile_size < 1:
            raise CheckpointError(f"model {name}'s config.json gives no tile_size")
        return cls(name, tile_size, card)

    @classmethod
    def from_folder(cls, folder: Path, name: str) -> ModelFacts:
        """From a checkpoint folder (its card may be absent, as `load_model` allows)."""
        values = []
        for filename, required in ((CONFIG_FILE, True), (CARD_FILE, False)):
            path = folder / filename
            if not path.is_file():
                if required:
                    raise CheckpointError(f"checkpoint {folder} has no {filename}")
                values.append({})
                continue
            try:
                values.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"{path} is not readable JSON: {exc}") from exc
        return cls.from_config(name, *values)


@dataclass(frozen=True)
class SegmentPlan:
    """A checked segmentation: the prompts, the raster on its working grid, the region and
    the tile grid, as the pipeline will use them."""

    raster_path: str
    prompts: tuple[str, ...]  # checked, whitespace collapsed
    options: SegmentOptions
    model: ModelFacts
    spec: RasterSpec  # the working grid (see resolution.py)
    resolution: WorkingResolution
    region: Region
    grid: TileGrid
    seconds: float  # time spent planning, counted in the run's own seconds

    @property
    def native_pixels(self) -> int:
        """Pixels of the file itself (the probabilities a run writes are at most this many
        per prompt on the native grid)."""
        native = self.spec.native
        return native.width * native.height if native else self.spec.width * self.spec.height


def plan_segment(
    raster_path: str | os.PathLike[str],
    prompts: Sequence[str],
    options: SegmentOptions,
    model: ModelFacts,
    *,
    native: RasterSpec | None = None,
) -> SegmentPlan:
    """Check everything about a segmentation that needs no model weights; raises the
    SaymapError that names the first thing to fix (options, prompts, raster, AOI, tiles).
    `native`: the raster as already opened with these options' bands and CRS (a
    collection's layout opened it), so it is not opened and sampled again."""
    started = time.perf_counter()
    options.check()  # before anything is opened or allocated
    checked = tuple(check_prompts(prompts))
    if native is None:
        native = open_raster(raster_path, bands=options.bands, assume_crs=options.assume_crs)
    spec, resolution = working_spec(native, options.gsd, model.card)
    region = resolve_region(spec, options.aoi)
    tile = options.tile or model.tile_size
    try:
        grid = TileGrid.over(region.window, tile, options.overlap)
    except OptionError as exc:
        if options.tile is not None:
            raise
        raise OptionError(f"{exc} (model {model.name}'s own tile size: no tile was given)") from exc
    return SegmentPlan(
        raster_path=os.fspath(raster_path),
        prompts=checked,
        options=options,
        model=model,
        spec=spec,
        resolution=resolution,
        region=region,
        grid=grid,
        seconds=time.perf_counter() - started,
    )
