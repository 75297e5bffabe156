"""Georeferenced raster input: open, check, and read RGB uint8 windows with a validity mask.

Never reads a whole raster: the percentiles that scale 16-bit and float data come from a
decimated read (which GDAL serves from an overview when the file has one), and pixels come
window by window. Invalid pixels (the file's nodata, NaN, alpha 0, and all-zero fill such
as the black triangle of oam_manila, which carries no nodata flag) are reported so the
pipeline never segments them. All-zero counts as fill only in a raster whose edge shows it:
fill written without a flag surrounds a warped or clipped footprint, while black inside an
image (deep water or shadow that a JPEG clips to 0) is ground to segment.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import CRSError as RasterioCRSError
from rasterio.errors import RasterBlockError, RasterioIOError
from rasterio.windows import Window

from saymap.engine.errors import BandError, CRSError, RasterReadError, explain

log = logging.getLogger(__name__)

PERCENTILES = (2.0, 98.0)
SAMPLE_SIDE = 1024  # longest side of the decimated read the percentiles come from
MAX_BLOCKS_CHECKED = 4096  # beyond this many blocks a window is just read
ZERO_FILL_EDGE_SHARE = 0.01  # all-zero pixels on this share of the edge: zero is fill


@dataclass(frozen=True)
class BandScaling:
    """How one source band becomes uint8: as is (8-bit) or stretched low..high → 0..255."""

    band: int
    low: float | None = None
    high: float | None = None

    @property
    def as_is(self) -> bool:
        return self.low is None

    def describe(self) -> str:
        if self.as_is:
            return f"band {self.band}: 8-bit, used as is"
        return (
            f"band {self.band}: {PERCENTILES[0]:g}–{PERCENTILES[1]:g} % stretch "
            f"[{self.low:.6g}, {self.high:.6g}] → 0–255"
        )


@dataclass(frozen=True)
class NativeGrid:
    """The file's own pixel grid, kept when a spec describes a resampled working grid."""

    width: int
    height: int
    transform: Affine
    scale: float  # working pixel size / native pixel size


@dataclass(frozen=True)
class RasterSpec:
    """Everything the pipeline needs to know about a raster, checked once, before any model.

    `width`, `height` and `transform` describe the grid the pipeline works on: the file's own,
    or (when `native` is set) a resampled working grid over the same ground, see
    engine/resolution.py. Readers resample; everything downstream only sees this grid.
    """

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: CRS
    crs_assumed: bool
    transform: Affine
    nodata: float | None
    alpha_band: int | None
    bands: tuple[int, int, int]  # 1-based source band for R, G, B (a single band repeated)
    scaling: tuple[BandScaling, BandScaling, BandScaling]
    native: NativeGrid | None = None
    zero_is_fill: bool = True  # all-zero pixels are fill (the raster's edge has them)
    label: str | None = None  # what messages call it when its path means nothing to a user

    @property
    def full_window(self) -> Window:
        return Window(0, 0, self.width, self.height)

    @property
    def name(self) -> str:
        """The raster as messages name it: a mosaic's VRT sits in a temporary folder, so a
        mosaic is named by its members instead."""
        return self.label or self.path


def parse_bands(value: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """'4,3,2' or [4, 3, 2] → (4, 3, 2); 1-based like GDAL. None means the default."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            numbers = tuple(int(part) for part in text.replace(" ", "").split(","))
        except ValueError as exc:
            raise BandError(f"bands must be 1-based numbers like 1,2,3; got {value!r}") from exc
    else:
        numbers = tuple(int(v) for v in value)
    if len(numbers) not in (1, 3):
        raise BandError(f"give 1 band (repeated as grey) or 3 bands (R,G,B); got {numbers}")
    return numbers


def _resolve_crs(dataset_crs: CRS | None, assume_crs: str | None, path: str) -> tuple[CRS, bool]:
    if dataset_crs is not None and dataset_crs.to_wkt():
        return dataset_crs, False
    if not assume_crs:
        raise CRSError(
            f"{path} has no coordinate reference system; "
            "pass --assume-crs (e.g. EPSG:32633) if you know it"
        )
    try:
        return CRS.from_user_input(assume_crs), True
    except (RasterioCRSError, ValueError) as exc:
        raise CRSError(f"--assume-crs {assume_crs!r} is not a CRS: {exc}") from exc


def _choose_bands(
    requested: tuple[int, ...] | None, count: int, alpha: int | None, path: str
) -> tuple[int, int, int]:
    if requested is None:
        colour = [b for b in range(1, count + 1) if b != alpha] or [1]
        chosen = tuple(colour[:3]) if len(colour) >= 3 else (colour[0],)
    else:
        chosen = requested
        bad = [b for b in chosen if not 1 <= b <= count]
        if bad:
            raise BandError(
                f"band {bad[0]} is out of range: {path} has {count} band(s), numbered 1..{count}"
            )
    if len(chosen) == 1:
        chosen = chosen * 3
    return chosen  # type: ignore[return-value]


def invalid_pixels(
    raw: np.ndarray,
    nodata: float | None,
    alpha: np.ndarray | None = None,
    zero_is_fill: bool = True,
) -> np.ndarray:
    """(C, H, W) raw values → (H, W) bool, True where the pixel must never be segmented.

    A pixel is invalid when every used band equals nodata, when any band is NaN or ±inf, when
    the alpha band is 0, or (`zero_is_fill`) when every band is 0 (black fill written without
    a nodata flag).
    """
    invalid = np.all(raw == 0, axis=0) if zero_is_fill else np.zeros(raw.shape[1:], bool)
    if nodata is not None and not np.isnan(nodata):
        invalid |= np.all(raw == nodata, axis=0)
    if np.issubdtype(raw.dtype, np.floating):  # NaN and ±inf are no measurement either
        invalid |= np.any(~np.isfinite(raw), axis=0)
    if alpha is not None:
        invalid |= alpha == 0
    return invalid


def to_uint8(raw: np.ndarray, scaling: Sequence[BandScaling]) -> np.ndarray:
    """(3, H, W) raw values → (3, H, W) uint8, band by band as the scaling says."""
    out = np.empty(raw.shape, dtype=np.uint8)
    for i, scale in enumerate(scaling):
        band = raw[i]
        if scale.as_is:
            out[i] = band
            continue
        span = max(float(scale.high) - float(scale.low), 1e-12)  # type: ignore[arg-type]
        stretched = (band.astype(np.float32) - np.float32(scale.low)) / np.float32(span)
        stretched = np.nan_to_num(stretched, nan=0.0)
        out[i] = (np.clip(stretched, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return out


def _edge_ring(dataset: rasterio.io.DatasetReader, bands: tuple[int, ...]) -> np.ndarray:
    """(3, n) raw values along the four edges, at most SAMPLE_SIDE per edge (nearest
    neighbour from edge strips as deep as the decimation, so GDAL can use an overview)."""
    height, width = dataset.height, dataset.width
    factor = max(1.0, max(width, height) / SAMPLE_SIDE)
    deep_rows, deep_cols = min(height, max(1, round(factor))), min(width, max(1, round(factor)))
    across, down = max(1, round(width / factor)), max(1, round(height / factor))
    unique = sorted(set(bands))
    strips = []
    for window, shape in (
        (Window(0, 0, width, deep_rows), (1, across)),
        (Window(0, height - deep_rows, width, deep_rows), (1, across)),
        (Window(0, 0, deep_cols, height), (down, 1)),
        (Window(width - deep_cols, 0, deep_cols, height), (down, 1)),
    ):
        out_shape = (len(unique), *shape)
        strip = dataset.read(
            unique, window=window, out_shape=out_shape, resampling=Resampling.nearest
        )
        strips.append(strip.reshape(len(unique), -1))
    return np.concatenate(strips, axis=1)[[unique.index(b) for b in bands]]


def zero_fill_on_edge(ring: np.ndarray) -> bool:
    """(C, n) raw values of the edge → whether all-zero pixels cover ZERO_FILL_EDGE_SHARE of
    it: black that reaches the edge is fill, black only inside the image is data."""
    return bool(np.all(ring == 0, axis=0).mean() >= ZERO_FILL_EDGE_SHARE)


def _sample_scaling(
    dataset: rasterio.io.DatasetReader,
    bands: tuple[int, int, int],
    alpha: int | None,
    zero_is_fill: bool,
) -> tuple[BandScaling, BandScaling, BandScaling]:
    """Percentile stretch per band from a decimated read (an overview where the file has one)."""
    if all(dataset.dtypes[b - 1] == "uint8" for b in bands):
        return tuple(BandScaling(b) for b in bands)  # type: ignore[return-value]
    factor = max(dataset.width, dataset.height) / SAMPLE_SIDE
    shape = (
        (max(1, round(dataset.height / factor)), max(1, round(dataset.width / factor)))
        if factor > 1
        else (dataset.height, dataset.width)
    )
    unique = sorted(set(bands))
    sample = dataset.read(unique, out_shape=(len(unique), *shape), resampling=Resampling.nearest)
    alpha_sample = (
        dataset.read(alpha, out_shape=shape, resampling=Resampling.nearest) if alpha else None
    )
    picked = np.stack([sample[unique.index(b)] for b in bands])
    valid = ~invalid_pixels(picked, dataset.nodata, alpha_sample, zero_is_fill)
    scales = []
    for band, values in zip(bands, picked, strict=True):
        if dataset.dtypes[band - 1] == "uint8":
            scales.append(BandScaling(band))
            continue
        good = values[valid]
        good = good[np.isfinite(good)] if np.issubdtype(good.dtype, np.floating) else good
        if good.size == 0:
            low, high = 0.0, 1.0
        else:
            low, high = (float(v) for v in np.percentile(good, PERCENTILES))
            if high <= low:
                high = low + 1.0
        scales.append(BandScaling(band, low, high))
    return tuple(scales)  # type: ignore[return-value]


def _alpha_band(dataset: rasterio.io.DatasetReader) -> int | None:
    for index, interp in enumerate(dataset.colorinterp, start=1):
        if interp == ColorInterp.alpha:
            return index
    return None


def _open(path: str | os.PathLike[str]) -> rasterio.io.DatasetReader:
    text = os.fspath(path)
    if not Path(text).exists():
        raise RasterReadError(f"raster not found: {text}")
    try:
        return rasterio.open(text)
    except RasterioIOError as exc:
        raise RasterReadError(f"{text} is not a raster GDAL can read ({exc})") from exc


def open_raster(
    path: str | os.PathLike[str],
    *,
    bands: str | Sequence[int] | None = None,
    assume_crs: str | None = None,
    label: str | None = None,
) -> RasterSpec:
    """Check a raster (exists, readable, CRS, bands) and work out its scaling; cheap.
    `label`: what messages call it instead of its path (a mosaic's temporary VRT)."""
    requested = parse_bands(bands)
    with _open(path) as dataset:
        crs, assumed = _resolve_crs(dataset.crs, assume_crs, os.fspath(path))
        alpha = _alpha_band(dataset)
        chosen = _choose_bands(requested, dataset.count, alpha, os.fspath(path))
        try:
            zero_is_fill = zero_fill_on_edge(_edge_ring(dataset, chosen))
        except RasterioIOError as exc:
            # A damaged block on the edge: keep the cautious rule; the window read that
            # meets the block reports it by rows and columns, where the job can resume.
            log.debug("edge of %s unreadable (%s): all-zero pixels count as fill", path, exc)
            zero_is_fill = True
        scaling = _sample_scaling(dataset, chosen, alpha, zero_is_fill)
        return RasterSpec(
            path=os.fspath(path),
            width=dataset.width,
            height=dataset.height,
            count=dataset.count,
            dtype=dataset.dtypes[chosen[0] - 1],
            crs=crs,
            crs_assumed=assumed,
            transform=dataset.transform,
            nodata=dataset.nodata,
            alpha_band=alpha,
            bands=chosen,
            scaling=scaling,
            zero_is_fill=zero_is_fill,
            label=label,
        )


class WindowReader:
    """Reads fixed-size tiles as RGB uint8 plus a validity mask; parts off the raster are padded.

    Padding mirrors the image (so the model sees plausible context, not a black wall) and is
    marked invalid, so it is never written. One reader per thread: rasterio handles are not
    shared across threads.
    """

    def __init__(self, spec: RasterSpec) -> None:
        self.spec = spec
        self._unique = sorted(set(spec.bands))
        self._order = [self._unique.index(b) for b in spec.bands]
        self._dataset: rasterio.io.DatasetReader | None = None
        self._blocks: tuple[int, int] | None = None  # (rows, cols) of a GeoTIFF's blocks

    def __enter__(self) -> WindowReader:
        dataset = _open(self.spec.path)
        # The spec may be older than this open (a queued job's plan): a file replaced since
        # would be read on the wrong grid, so a changed size or band count is refused.
        native = self.spec.native or self.spec
        found = (dataset.width, dataset.height, dataset.count)
        if found != (native.width, native.height, self.spec.count):
            dataset.close()
            raise RasterReadError(
                f"{self.spec.name} changed after it was checked: it is now {found[0]}x{found[1]} "
                f"px with {found[2]} band(s), it was {native.width}x{native.height} px with "
                f"{self.spec.count}; start again"
            )
        self._dataset = dataset
        self._blocks = dataset.block_shapes[0] if dataset.driver == "GTiff" else None
        return self

    def _never_written(self, native: Window) -> bool:
        """True when every file block under `native` is absent (a sparse GeoTIFF's empty
        area): it reads as fill, so the window is answered without decoding anything."""
        if self._blocks is None:
            return False
        dataset, (bh, bw) = self._dataset, self._blocks
        assert dataset is not None
        rows = range(
            int(native.row_off) // bh, (math.ceil(native.row_off + native.height) - 1) // bh + 1
        )
        cols = range(
            int(native.col_off) // bw, (math.ceil(native.col_off + native.width) - 1) // bw + 1
        )
        if len(rows) * len(cols) > MAX_BLOCKS_CHECKED:
            return False
        for band in self._unique:
            for i in rows:
                for j in cols:
                    try:
                        dataset.block_size(band, i, j)
                        return False  # a block with bytes: read the window
                    except RasterBlockError:
                        continue
        return True

    def __exit__(self, *exc: object) -> None:
        if self._dataset is not None:
            self._dataset.close()
            self._dataset = None

    def _read_raw(self, inside: Window) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw values of a window of the spec's grid, resampled from the file's own grid
        when the spec is a working grid: GDAL reads the (fractional) native window straight
        into the working shape, averaging when shrinking (every native pixel counts, as a
        coarser sensor would see it) and bilinear when enlarging."""
        spec, dataset = self.spec, self._dataset
        assert dataset is not None
        if spec.native is None:
            raw = dataset.read(self._unique, window=inside)[self._order]
            alpha = dataset.read(spec.alpha_band, window=inside) if spec.alpha_band else None
            return raw, alpha
        s = spec.native.scale
        native = Window(inside.col_off * s, inside.row_off * s, inside.width * s, inside.height * s)
        shape = (int(inside.height), int(inside.width))
        how = Resampling.average if s > 1 else Resampling.bilinear
        raw = dataset.read(
            self._unique, window=native, out_shape=(len(self._unique), *shape), resampling=how
        )[self._order]
        alpha = (
            dataset.read(spec.alpha_band, window=native, out_shape=shape, resampling=how)
            if spec.alpha_band
            else None
        )
        return raw, alpha

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """A window (may overhang the raster) → ((3, h, w) uint8, (h, w) bool valid)."""
        if self._dataset is None:
            raise RuntimeError("WindowReader used outside its `with` block")
        spec = self.spec
        row0, col0 = int(window.row_off), int(window.col_off)
        height, width = int(window.height), int(window.width)
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + height, spec.height), min(col0 + width, spec.width)
        if r1 <= r0 or c1 <= c0:
            return np.zeros((3, height, width), np.uint8), np.zeros((height, width), bool)
        inside = Window(c0, r0, c1 - c0, r1 - r0)
        s = spec.native.scale if spec.native is not None else 1.0
        if self._never_written(Window(c0 * s, r0 * s, (c1 - c0) * s, (r1 - r0) * s)):
            return np.zeros((3, height, width), np.uint8), np.zeros((height, width), bool)
        try:
            raw, alpha = self._read_raw(inside)
        except RasterioIOError as exc:
            raise RasterReadError(
                f"cannot read rows {r0}-{r1}, columns {c0}-{c1} of {spec.name}: {explain(exc)}"
            ) from exc
        valid = ~invalid_pixels(raw, spec.nodata, alpha, spec.zero_is_fill)
        pixels = to_uint8(raw, spec.scaling)
        pixels[:, ~valid] = 0
        pad = ((r0 - row0, row0 + height - r1), (c0 - col0, col0 + width - c1))
        if any(p for pair in pad for p in pair):
            pixels = np.pad(pixels, ((0, 0), *pad), mode="symmetric")
            valid = np.pad(valid, pad, mode="constant", constant_values=False)
        return pixels, valid
