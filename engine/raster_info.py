"""What `saymap info` tells a user about a raster before segmenting it: the file's facts and
the band scaling the pipeline would use (engine/raster.py reads; this module describes)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from pyproj import CRS as ProjCRS
from rasterio.crs import CRS

from saymap.engine.raster import BandScaling, RasterSpec, _open, open_raster


@dataclass(frozen=True)
class RasterInfo:
    """What `saymap info` prints: the facts a user needs before segmenting a raster."""

    spec: RasterSpec
    driver: str
    dtypes: tuple[str, ...]
    block_shape: tuple[int, int]
    overviews: tuple[int, ...]
    crs_name: str
    crs_epsg: int | None
    bounds: tuple[float, float, float, float]

    def lines(self) -> list[str]:
        spec = self.spec
        crs = f"EPSG:{self.crs_epsg}" if self.crs_epsg else "custom (no EPSG code)"
        if spec.crs_assumed:
            crs += " (assumed: the file has none)"
        res_x = (spec.transform.a**2 + spec.transform.d**2) ** 0.5
        res_y = (spec.transform.b**2 + spec.transform.e**2) ** 0.5
        units = spec.crs.linear_units if not spec.crs.is_geographic else "degree"
        return [
            f"file:        {spec.path} ({self.driver})",
            f"crs:         {crs} — {self.crs_name}",
            f"size:        {spec.width} x {spec.height} px, {spec.count} band(s)",
            f"dtype:       {', '.join(sorted(set(self.dtypes)))}",
            f"nodata:      {spec.nodata if spec.nodata is not None else 'none'}"
            "; pixels that are 0 in every band are treated as fill too",
            f"resolution:  {res_x:.6g} x {res_y:.6g} {units}",
            "bounds:      " + ", ".join(f"{v:.6f}" for v in self.bounds),
            f"blocks:      {self.block_shape[1]} x {self.block_shape[0]} px, overviews: "
            + (", ".join(str(o) for o in self.overviews) or "none"),
            f"bands used:  {', '.join(str(b) for b in spec.bands)} (R, G, B)"
            + (f"; alpha band {spec.alpha_band} masks" if spec.alpha_band else ""),
            *[f"scaling:     {s.describe()}" for s in _dedupe(spec.scaling)],
        ]


def _dedupe(scaling: Sequence[BandScaling]) -> list[BandScaling]:
    seen: dict[int, BandScaling] = {}
    for scale in scaling:
        seen.setdefault(scale.band, scale)
    return list(seen.values())


def describe(
    path: str | os.PathLike[str],
    *,
    bands: str | Sequence[int] | None = None,
    assume_crs: str | None = None,
) -> RasterInfo:
    """The facts `saymap info` prints, including the scaling segmenting would use."""
    spec = open_raster(path, bands=bands, assume_crs=assume_crs)
    with _open(path) as dataset:
        driver = dataset.driver
        dtypes = tuple(dataset.dtypes)
        block = dataset.block_shapes[0]
        overviews = tuple(dataset.overviews(1))
        bounds = tuple(dataset.bounds)
    return RasterInfo(
        spec=spec,
        driver=driver,
        dtypes=dtypes,
        block_shape=(int(block[0]), int(block[1])),
        overviews=overviews,
        crs_name=crs_label(spec.crs),
        crs_epsg=spec.crs.to_epsg(),
        bounds=bounds,  # type: ignore[arg-type]
    )


def crs_label(crs: CRS) -> str:
    """The CRS's own name; for an unnamed custom CRS, its projection method and datum."""
    proj = ProjCRS.from_wkt(crs.to_wkt())
    if proj.name and proj.name.lower() != "unnamed":
        return proj.name
    method = proj.coordinate_operation.method_name if proj.coordinate_operation else "geographic"
    datum = proj.datum.name if proj.datum else "unknown datum"
    return f"unnamed {method} on {datum}"
