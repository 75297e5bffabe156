"""`saymap info RASTER`: what the engine sees in a raster before segmenting it."""

from __future__ import annotations

import argparse
import logging
import sys

from saymap.engine.raster_info import describe


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show a raster's CRS, size, bands, dtype, nodata, resolution and scaling",
        description="Print what segmenting this raster would use: CRS, grid, bands, scaling.",
    )
    parser.add_argument("raster", help="a GeoTIFF or any raster GDAL reads")
    parser.add_argument("--bands", help="1-based band map, e.g. 4,3,2 (default: first three)")
    parser.add_argument("--assume-crs", help="CRS for a raster that has none, e.g. EPSG:32633")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    quiet_libraries()
    info = describe(args.raster, bands=args.bands, assume_crs=args.assume_crs)
    sys.stdout.write("\n".join(info.lines()) + "\n")
    return 0


def quiet_libraries() -> None:
    """GDAL's own messages (rasterio and pyogrio log them at INFO) would add a second line to
    the one-line errors; the SaymapError that follows says what went wrong."""
    for name in ("rasterio", "pyogrio"):
        logging.getLogger(name).setLevel(logging.WARNING)
