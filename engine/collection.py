"""A collection of rasters: what the user named → raster files → groups to mosaic → units of work.

`expand_rasters` turns paths, folders, globs and list files into raster files, once each.
`lay_out` opens each once (the same checks as a single raster), groups those that share a
CRS and touch into one mosaic (a hand-written GDAL VRT, so an object across the seam is
segmented as one), and cuts the work into units that depend only on the inputs and the
block size, never on how many processes share them. No torch here.
"""

from __future__ import annotations

import glob
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

from saymap.engine.errors import OptionError, RasterReadError
from saymap.engine.raster import RasterSpec, open_raster

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


@dataclass(frozen=True)
class Group:
    """Rasters in one CRS whose footprints touch or overlap (a connected component)."""

    index: int
    crs_wkt: str
    rasters: tuple[str, ...]
    mosaic: str  # what the pipeline reads: the raster itself when alone, else a VRT in work_dir
    # A lone raster's spec as opened here, so planning it does not open and sample it again.
    spec: RasterSpec | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Unit:
    """One resumable share of work: a raster, or one block of a big raster.

    `bounds` (minx, miny, maxx, maxy in the group CRS) is the area the unit owns: its
    raster's bounds, or its block's. Blocks of one raster tile it exactly, without overlap.
    Where two input rasters overlap their units' bounds overlap too; the earlier raster (the
    lower unit index) owns the overlap: its pixels are the mosaic's there, and the merge
    and the `source` of polygons give it precedence.
    """

    index: int  # 0..n-1, in the order of the rasters, then of their blocks (row by row)
    group: int
    raster: str  # the input raster the unit belongs to (the `source` of its polygons)
    bounds: tuple[float, float, float, float]
    label: str  # for progress: "tile_03.tif" or "big.tif block 2 of 6"


@dataclass(frozen=True)
class Layout:
    groups: tuple[Group, ...]
    units: tuple[Unit, ...]


@dataclass(frozen=True)
class _Member:
    """One opened raster and its footprint, as grouping and the mosaic need them."""

    spec: RasterSpec
    bounds: tuple[float, float, float, float]

    @property
    def north_up(self) -> bool:
        t = self.spec.transform
        return t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0

    @property
    def pixel(self) -> float:
        """The raster's smaller pixel side, in CRS units."""
        t = self.spec.transform
        return min(math.hypot(t.a, t.d), math.hypot(t.b, t.e))

    @property
    def name(self) -> str:
        return os.path.basename(self.spec.path)


def _member(path: str, bands: str | Sequence[int] | None, assume_crs: str | None) -> _Member:
    spec = open_raster(path, bands=bands, assume_crs=assume_crs)
    corners = [spec.transform @ (c, r) for c in (0, spec.width) for r in (0, spec.height)]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return _Member(spec, (min(xs), min(ys), max(xs), max(ys)))


def _components(members: Sequence[_Member]) -> list[list[int]]:
    """Indices of rasters in one CRS whose footprints touch or overlap within half a native
    pixel, connected components, each in input order, in the order of first appearance."""
    classes: list[list[int]] = []  # indices sharing a CRS (CRS equality, not WKT text)
    for i, member in enumerate(members):
        same = next((c for c in classes if members[c[0]].spec.crs == member.spec.crs), None)
        if same is None:
            classes.append([i])
        else:
            same.append(i)
    parent = list(range(len(members)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for indices in classes:
        bounds = np.array([members[i].bounds for i in indices])
        pixels = np.array([members[i].pixel for i in indices])
        for k, i in enumerate(indices[:-1]):
            rest = slice(k + 1, None)
            tol = 0.5 * np.minimum(pixels[k], pixels[rest])
            touch = (
                (bounds[rest, 0] <= bounds[k, 2] + tol)
                & (bounds[k, 0] <= bounds[rest, 2] + tol)
                & (bounds[rest, 1] <= bounds[k, 3] + tol)
                & (bounds[k, 1] <= bounds[rest, 3] + tol)
            )
            for j in np.flatnonzero(touch):
                a, b = root(i), root(indices[k + 1 + int(j)])
                parent[max(a, b)] = min(a, b)  # the root is the component's first raster
    components: dict[int, list[int]] = {}
    for i in range(len(members)):
        components.setdefault(root(i), []).append(i)
    return sorted(components.values(), key=lambda c: c[0])


@dataclass(frozen=True)
class _Bands:
    """What must agree between the rasters of one mosaic, read from the file's header."""

    dtypes: tuple[str, ...]
    colorinterp: tuple[str, ...]
    nodata: float | None
    block: tuple[int, int]  # (rows, cols)

    def describe(self) -> str:
        kinds = ", ".join(dict.fromkeys(self.dtypes))
        alpha = [str(i) for i, c in enumerate(self.colorinterp, start=1) if c == "Alpha"]
        return f"{len(self.dtypes)} band(s) of {kinds}" + (
            f" with alpha band {alpha[0]}" if alpha else ""
        )


def _bands(path: str) -> _Bands:
    try:
        with rasterio.open(path) as dataset:
            return _Bands(
                dtypes=tuple(dataset.dtypes),
                colorinterp=tuple(c.name.capitalize() for c in dataset.colorinterp),
                nodata=dataset.nodata,
                block=tuple(int(v) for v in dataset.block_shapes[0]),  # type: ignore[arg-type]
            )
    except rasterio.errors.RasterioIOError as exc:
        raise RasterReadError(f"{path} is not a raster GDAL can read ({exc})") from exc


def _check_mosaicable(members: Sequence[_Member], bands: Sequence[_Bands]) -> None:
    """A mosaic needs north-up rasters with the same bands: refuse anything else, naming
    the two rasters, before anything is written."""
    first = members[0]
    for member, facts in zip(members, bands, strict=True):
        if not member.north_up:
            other = first if member is not first else members[1]
            raise RasterReadError(
                f"{member.spec.path} has a rotated, sheared or south-up geotransform and "
                f"touches {other.spec.path} in the same CRS, so the two cannot be mosaicked; "
                "map it in a run of its own"
            )
        if (facts.dtypes, facts.colorinterp.count("Alpha")) != (
            bands[0].dtypes,
            bands[0].colorinterp.count("Alpha"),
        ):
            raise RasterReadError(
                f"{first.spec.path} has {bands[0].describe()} but {member.spec.path} has "
                f"{facts.describe()}: rasters in one CRS that touch are mosaicked and need "
                "the same bands; map them in separate runs"
            )


_GDAL_TYPES = {
    "uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
    "int32": "Int32", "uint64": "UInt64", "int64": "Int64", "float32": "Float32",
    "float64": "Float64", "complex64": "CFloat32", "complex128": "CFloat64",
}  # fmt: skip


def _number(value: float) -> str:
    """A float as GDAL parses it back exactly; whole numbers without a fraction."""
    if math.isnan(value):
        return "nan"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _snap(value: float) -> float:
    """Pixel offsets and sizes within float noise of a whole number are that number, so
    aligned sources are copied, not resampled."""
    nearest = round(value)
    return float(nearest) if abs(value - nearest) < 1e-6 else value


def _mosaic_xml(members: Sequence[_Member], bands: Sequence[_Bands], crs_wkt: str) -> str:
    """A GDAL VRT over the members on a grid at their finest pixel size, origin at their
    top-left; sources listed last-first, so the earlier raster is drawn last and owns any
    overlap. Bands, data types, colour roles (alpha) and nodata are the sources'."""
    res_x = min(m.spec.transform.a for m in members)
    res_y = min(-m.spec.transform.e for m in members)
    minx = min(m.bounds[0] for m in members)
    maxy = max(m.bounds[3] for m in members)
    width = max(1, math.ceil(_snap((max(m.bounds[2] for m in members) - minx) / res_x)))
    height = max(1, math.ceil(_snap((maxy - min(m.bounds[1] for m in members)) / res_y)))
    nodata = next((b.nodata for b in bands if b.nodata is not None), None)
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = crs_wkt
    transform = (minx, res_x, 0.0, maxy, 0.0, -res_y)
    ET.SubElement(root, "GeoTransform").text = ", ".join(_number(v) for v in transform)
    for band, dtype in enumerate(bands[0].dtypes, start=1):
        element = ET.SubElement(
            root, "VRTRasterBand", dataType=_GDAL_TYPES.get(dtype, dtype), band=str(band)
        )
        if nodata is not None:
            ET.SubElement(element, "NoDataValue").text = _number(nodata)
        ET.SubElement(element, "ColorInterp").text = bands[0].colorinterp[band - 1]
        for member, facts in reversed(list(zip(members, bands, strict=True))):
            _add_source(element, member, facts, band, (minx, maxy, res_x, res_y))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _add_source(
    band_element: ET.Element,
    member: _Member,
    facts: _Bands,
    band: int,
    grid: tuple[float, float, float, float],
) -> None:
    minx, maxy, res_x, res_y = grid
    spec, t = member.spec, member.spec.transform
    dst = (
        _snap((t.c - minx) / res_x),
        _snap((maxy - t.f) / res_y),
        _snap(spec.width * t.a / res_x),
        _snap(spec.height * -t.e / res_y),
    )
    kind = "SimpleSource" if facts.nodata is None else "ComplexSource"
    source = ET.SubElement(band_element, kind)
    if dst[2:] != (spec.width, spec.height):  # a coarser raster, enlarged onto the grid
        source.set("resampling", "bilinear")
    ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = os.path.abspath(spec.path)
    ET.SubElement(source, "SourceBand").text = str(band)
    ET.SubElement(
        source,
        "SourceProperties",
        RasterXSize=str(spec.width),
        RasterYSize=str(spec.height),
        DataType=_GDAL_TYPES.get(facts.dtypes[band - 1], facts.dtypes[band - 1]),
        BlockXSize=str(facts.block[1]),
        BlockYSize=str(facts.block[0]),
    )
    ET.SubElement(source, "SrcRect", _rect((0, 0, spec.width, spec.height)))
    ET.SubElement(source, "DstRect", _rect(dst))
    if facts.nodata is not None:
        ET.SubElement(source, "NODATA").text = _number(facts.nodata)


def _rect(values: Sequence[float]) -> dict[str, str]:
    keys = ("xOff", "yOff", "xSize", "ySize")
    return {k: _number(v) for k, v in zip(keys, values, strict=True)}


def _write_text(path: Path, text: str) -> None:
    """Atomically: a reader never sees half a mosaic."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _edges(size: int, block_px: int) -> list[int]:
    """Block edges in pixels: as few blocks as fit block_px, sizes within one pixel."""
    count = math.ceil(size / block_px)
    return [round(i * size / count) for i in range(count + 1)]


def _units(member: _Member, group: int, first_index: int, block_px: int) -> list[Unit]:
    """The raster's units: itself, or its blocks row by row when a side exceeds block_px.
    A rotated raster stays one unit: axis-aligned bounds of its blocks would overlap."""
    spec, t = member.spec, member.spec.transform
    path = os.path.abspath(spec.path)
    if not member.north_up or (spec.width <= block_px and spec.height <= block_px):
        return [Unit(first_index, group, path, member.bounds, member.name)]
    cols, rows = _edges(spec.width, block_px), _edges(spec.height, block_px)
    xs = [t.c + c * t.a for c in cols]
    ys = [t.f + r * t.e for r in rows]  # top to bottom
    count = (len(cols) - 1) * (len(rows) - 1)
    units = []
    for r in range(len(rows) - 1):
        for c in range(len(cols) - 1):
            k = len(units)
            label = f"{member.name} block {k + 1} of {count}"
            bounds = (xs[c], ys[r + 1], xs[c + 1], ys[r])
            units.append(Unit(first_index + k, group, path, bounds, label))
    return units


def lay_out(
    rasters: Sequence[str | os.PathLike[str]],
    work_dir: str | os.PathLike[str],
    *,
    bands: str | Sequence[int] | None = None,
    assume_crs: str | None = None,
    block_px: int = 16384,
) -> Layout:
    """Open and check each raster once (open_raster: readable, CRS known or assumed, bands),
    group those in one CRS that touch or overlap, write each group's mosaic VRT in work_dir
    (a lone raster is its own mosaic) and cut the work into units.

    Units depend only on `rasters` and `block_px`. Raises the one-line SaymapError naming the
    first raster at fault: unreadable, no CRS, bad bands, or two touching rasters that cannot
    be mosaicked (different bands or data types, a rotated geotransform).
    """
    if not rasters:
        raise RasterReadError("no raster given")
    if block_px < 1:
        raise OptionError(f"block size must be at least 1 pixel, got {block_px}")
    members = [_member(os.fspath(p), bands, assume_crs) for p in rasters]
    components = _components(members)
    mosaics: list[str] = []
    for index, component in enumerate(components):
        group = [members[i] for i in component]
        if len(group) == 1:
            mosaics.append(os.path.abspath(group[0].spec.path))
            continue
        facts = [_bands(m.spec.path) for m in group]
        _check_mosaicable(group, facts)
        folder = Path(work_dir)
        folder.mkdir(parents=True, exist_ok=True)
        vrt = folder / f"mosaic_{index:04d}.vrt"
        _write_text(vrt, _mosaic_xml(group, facts, group[0].spec.crs.to_wkt()))
        mosaics.append(os.path.abspath(vrt))
    group_of = {i: g for g, component in enumerate(components) for i in component}
    groups = tuple(
        Group(
            index=g,
            crs_wkt=members[component[0]].spec.crs.to_wkt(),
            rasters=tuple(os.path.abspath(members[i].spec.path) for i in component),
            mosaic=mosaics[g],
            spec=members[component[0]].spec if len(component) == 1 else None,
        )
        for g, component in enumerate(components)
    )
    units: list[Unit] = []
    for i, member in enumerate(members):
        units.extend(_units(member, group_of[i], len(units), block_px))
    return Layout(groups, tuple(units))
