"""A collection of rasters: what the user named → raster files → groups to mosaic → units of work.

`expand_rasters` turns paths, folders, globs and list files into raster files, once each.
`lay_out` opens each once (the same checks as a single raster), groups those that share a
CRS and touch into one mosaic (a hand-written GDAL VRT, so an object across the seam is
segmented as one), and cuts the work into units that depend only on the inputs and the
block size, never on how many processes share them. No torch here.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from saymap.engine.errors import RasterReadError

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")  # what a folder contributes
LIST_SUFFIXES = (".txt", ".lst")  # one raster path per line


def _folder_rasters(folder: Path) -> list[Path]:
    found = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES]
    if not found:
        kinds = ", ".join(f"*{s}" for s in RASTER_SUFFIXES)
        raise RasterReadError(f"folder {folder} holds no raster ({kinds}; not searched deeper)")
    return sorted(found)


def _listed_rasters(list_file: Path) -> list[Path]:
    """One path per line, relative to the list file's folder; blank and # lines skipped."""
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RasterReadError(f"cannot read the raster list {list_file}: {exc}") from exc
    found = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        path = list_file.parent / Path(text).expanduser()
        if not path.is_file():
            raise RasterReadError(f"{list_file} line {number}: raster not found: {path}")
        found.append(path)
    if not found:
        raise RasterReadError(f"the raster list {list_file} names no raster")
    return found


def _matched_rasters(pattern: str) -> list[Path]:
    found = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern)) if Path(p).is_file())
    if not found:
        raise RasterReadError(f"no raster file matches {pattern}")
    return found


def _expand_one(text: str) -> list[Path]:
    path = Path(text).expanduser()
    if path.is_dir():
        return _folder_rasters(path)
    if path.is_file():
        return _listed_rasters(path) if path.suffix.lower() in LIST_SUFFIXES else [path]
    if glob.has_magic(text):
        return _matched_rasters(text)
    raise RasterReadError(f"raster not found: {text}")


def expand_rasters(inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Absolute raster paths named by `inputs`, in order, each file once (its first place).

    An input is a raster file (anything GDAL opens, a .vrt included, taken as one raster), a
    folder (its *.tif, *.tiff, *.vrt, *.jp2, *.img files, sorted, not recursive), a glob
    pattern (its matching files, sorted) or a .txt/.lst list of paths. An input that names
    nothing raises a one-line RasterReadError naming it; whether the files are rasters is
    open_raster's check, made later by `lay_out`.
    """
    if not inputs:
        raise RasterReadError("no raster given")
    rasters: list[str] = []
    seen: set[str] = set()
    for item in inputs:
        for path in _expand_one(os.fspath(item)):
            key = os.path.normcase(os.path.realpath(path))  # a file named two ways is one file
            if key not in seen:
                seen.add(key)
                rasters.append(os.path.abspath(path))
    return rasters
