"""Working resolution: segment at the ground resolution the model was trained at.

A model trained on 0.3 m chips sees a 7.5 cm orthophoto's roof as a field of texture 4x
too big; read at 0.3 m it sees a roof. The pipeline therefore puts every raster on a
*working grid*: same CRS and origin, pixels `scale` times the native size, so that one
pixel covers the model card's `gsd_m` on the ground. Tiles, blending and polygons live on
that grid; polygons come out in the raster's CRS because the grid's transform is in it.

Ground resolution is measured geodesically at the raster's centre (the length of one pixel
along its rows and columns on the ellipsoid), so a geographic CRS (degrees) and a
Web-Mercator raster (whose map metres are longer than ground metres away from the equator)
both give true metres.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Geod, Transformer

from saymap.engine.errors import OptionError
from saymap.engine.raster import NativeGrid, RasterSpec

log = logging.getLogger(__name__)

# Within this factor of the card's gsd_m the raster is segmented at its own resolution:
# resampling by a few percent costs time and sharpness and changes nothing the model sees.
NATIVE_TOLERANCE = 1.1
MAX_SCALE = 64.0  # beyond this the raster is not imagery the model can read either way


@dataclass(frozen=True)
class GsdChoice:
    """What `--gsd` asked for: the card's resolution, the raster's own, or metres."""

    mode: str  # "auto", "native" or "metres"
    metres: float | None = None

    def describe(self) -> str:
        return f"{self.metres:g} m" if self.mode == "metres" else self.mode


def parse_gsd(value: str | float | None) -> GsdChoice:
    """'auto' (default), 'native', or a positive number of metres per pixel."""
    if value is None:
        return GsdChoice("auto")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "auto"):
            return GsdChoice("auto")
        if text == "native":
            return GsdChoice("native")
        try:
            number = float(text.removesuffix("m").strip())
        except ValueError as exc:
            raise OptionError(
                f"gsd must be auto, native or metres per pixel (e.g. 0.3); got {value!r}"
            ) from exc
    else:
        number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise OptionError(f"gsd must be a positive number of metres per pixel, got {value!r}")
    return GsdChoice("metres", number)


@dataclass(frozen=True)
class CardResolution:
    """The model card's working resolution and the native range it is good for."""

    gsd_m: float | None
    range_m: tuple[float, float] | None = None

    @classmethod
    def from_card(cls, card: dict[str, Any] | None) -> CardResolution:
        card = card or {}
        gsd = card.get("gsd_m")
        span = card.get("gsd_range_m")
        gsd_value = float(gsd) if isinstance(gsd, int | float) and gsd > 0 else None
        range_value = (
            (float(span[0]), float(span[1]))
            if isinstance(span, list | tuple) and len(span) == 2
            else None
        )
        return cls(gsd_value, range_value)


def ground_resolution_m(crs: Any, transform: Affine, width: int, height: int) -> float | None:
    """Metres on the ground per pixel at the raster's centre (geometric mean of the pixel's
    two sides), or None when the CRS has no geodetic meaning (an engineering CRS)."""
    try:
        proj = ProjCRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
        geodetic = proj.geodetic_crs
        if geodetic is None:
            return None
        to_lonlat = Transformer.from_crs(proj, geodetic, always_xy=True)
        geod = Geod(ellps="WGS84") if geodetic.ellipsoid is None else geodetic.get_geod()
    except Exception:  # pyproj raises several types for CRSs it cannot relate
        return None
    col, row = width / 2.0, height / 2.0
    points = [transform @ (col, row), transform @ (col + 1, row), transform @ (col, row + 1)]
    (x0, y0), (x1, y1), (x2, y2) = (to_lonlat.transform(x, y) for x, y in points)
    _, _, along_row = geod.inv(x0, y0, x1, y1)
    _, _, along_col = geod.inv(x0, y0, x2, y2)
    size = math.sqrt(abs(along_row) * abs(along_col))
    return size if math.isfinite(size) and size > 0 else None


@dataclass(frozen=True)
class WorkingResolution:
    """The grid a raster is segmented on, and how it was chosen."""

    native_m: float | None
    working_m: float | None
    scale: float  # working pixel size / native pixel size; 1.0 means the native grid
    note: str  # one line a user can read: what was done and why
    warning: str | None = None  # set when the raster is far outside the card's range


def choose_resolution(
    spec: RasterSpec, choice: GsdChoice, card: CardResolution
) -> WorkingResolution:
    """Decide the working grid for `spec` (measured once, before any model runs)."""
    native = ground_resolution_m(spec.crs, spec.transform, spec.width, spec.height)
    if choice.mode == "native":
        return WorkingResolution(native, native, 1.0, "segmented at the raster's own resolution")
    target = choice.metres if choice.mode == "metres" else card.gsd_m
    if target is None:
        return WorkingResolution(
            native, native, 1.0, "the model card gives no gsd_m: segmented at native resolution"
        )
    if native is None:
        return WorkingResolution(
            None,
            None,
            1.0,
            "the raster's CRS has no ground metres: segmented at native resolution",
            warning=(
                f"{spec.name}: cannot measure metres per pixel in its CRS; segmented at its "
                f"own resolution instead of {target:g} m (pass --gsd native to silence this)"
            ),
        )
    scale = target / native
    if not 1.0 / MAX_SCALE <= scale <= MAX_SCALE:
        raise OptionError(
            f"{spec.name} is {native:.3g} m per pixel; reading it at {target:g} m would scale it "
            f"by {scale:.3g}. Pass --gsd native, or a gsd within {MAX_SCALE:g}x of the raster's"
        )
    warning = _range_warning(spec.name, native, target, card, choice)
    if 1.0 / NATIVE_TOLERANCE <= scale <= NATIVE_TOLERANCE:
        note = f"native {native:.3g} m is within 10 % of {target:g} m: segmented as is"
        return WorkingResolution(native, native, 1.0, note, warning)
    scale = _snap(scale)
    working = native * scale
    how = "averaged down" if scale > 1 else "interpolated up"
    note = f"read at {working:.3g} m per pixel (native {native:.3g} m, {how} {scale:.3g}x)"
    return WorkingResolution(native, working, scale, note, warning)


def _snap(scale: float) -> float:
    """A factor within 1 % of a whole number (or of its inverse) becomes it: 0.075 m read at
    0.3 m is 4x exactly, so each working pixel averages whole native pixels and two rasters
    of one scene at 0.075 and 0.3 m land on the same grid."""
    whole = round(scale) if scale >= 1 else 1.0 / round(1.0 / scale)
    return whole if abs(whole - scale) <= 0.01 * scale else scale


def _range_warning(
    path: str, native: float, target: float, card: CardResolution, choice: GsdChoice
) -> str | None:
    if card.range_m is None:
        return None
    low, high = card.range_m
    if low <= native <= high:
        return None
    done = (
        f"resampled it to {target:g} m"
        if choice.mode != "native"
        else "segmented it at its own resolution"
    )
    return (
        f"{path} is {native:.3g} m per pixel, outside the {low:g}–{high:g} m this model is "
        f"made for; {done}, but expect weaker results"
    )


def at_working_resolution(spec: RasterSpec, resolution: WorkingResolution) -> RasterSpec:
    """The same raster seen on its working grid (unchanged when the scale is 1)."""
    if resolution.scale == 1.0:
        return spec
    if spec.native is not None:
        raise OptionError("a raster spec is already on a working grid; resample the native one")
    scale = resolution.scale
    # Whole working pixels only: a last partial one (under one working pixel) is left out,
    # so every working window maps to a native window inside the file.
    width = max(1, math.floor(spec.width / scale))
    height = max(1, math.floor(spec.height / scale))
    return dataclasses.replace(
        spec,
        width=width,
        height=height,
        transform=spec.transform @ Affine.scale(scale),
        native=NativeGrid(spec.width, spec.height, spec.transform, scale),
    )


def working_spec(
    spec: RasterSpec, gsd: str | float | None, card: dict[str, Any] | None
) -> tuple[RasterSpec, WorkingResolution]:
    """`spec` on the grid `--gsd` and the model card call for, and the decision made."""
    resolution = choose_resolution(spec, parse_gsd(gsd), CardResolution.from_card(card))
    if resolution.warning:
        log.warning(resolution.warning)
    log.debug("%s: %s", spec.name, resolution.note)  # callers report it (result, CLI line)
    return at_working_resolution(spec, resolution), resolution
