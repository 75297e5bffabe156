"""The bounds on processing options, in one place.

The API's request schema states them (so the OpenAPI document shows them) and the CLI checks
them before it loads a model or allocates a tile, so the two refuse the same values.
"""

from __future__ import annotations

import math

from saymap.engine.errors import OptionError

MAX_TILE_PX = 4096  # one (3, S, S) tile plus its (P, S, S) logits per batch item
MAX_OVERLAP_PX = 2048
MAX_BATCH_SIZE = 256


def check_limits(
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    min_area_px: float | None = None,
) -> None:
    """OptionError naming the first option out of bounds (None: not given, not checked)."""
    if tile is not None and not 1 <= tile <= MAX_TILE_PX:
        raise OptionError(f"tile size must be 1..{MAX_TILE_PX} pixels, got {tile}")
    if overlap is not None and not 0 <= overlap <= MAX_OVERLAP_PX:
        raise OptionError(f"overlap must be 0..{MAX_OVERLAP_PX} pixels, got {overlap}")
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise OptionError(f"batch size must be 1..{MAX_BATCH_SIZE}, got {batch_size}")
    if min_area_px is not None and not (math.isfinite(min_area_px) and min_area_px >= 0):
        raise OptionError(f"the minimum area must be a number of pixels >= 0, got {min_area_px}")
