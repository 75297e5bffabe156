"""The GeoPackage of results: checked before any work, written atomically, never clobbered.

Features go to a temporary file beside the output (same filesystem) in batches, so memory
stays flat however many objects a large raster yields; the file is renamed into place only
when complete. An existing output is kept unless the caller asked to overwrite it.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.errors
import shapely
from shapely.geometry.base import BaseGeometry

from saymap.engine.errors import OutputError

LAYER = "saymap"  # the one layer of a one-prompt run; several prompts get one each
GEOMETRY_TYPE = "Polygon"  # each feature is one connected object
FIELDS = ("prompt", "score", "area_m2", "model", "run_id", "created_at", "source")
_FLOAT_FIELDS = {"score", "area_m2"}
_SIDECARS = ("-journal", "-wal", "-shm")


def _check_writable(target: Path, overwrite: bool) -> Path:
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")
    if target.is_dir():
        raise OutputError(f"the output {target} is a folder, not a file")
    if target.exists() and not overwrite:
        raise OutputError(f"{target} already exists; pass --overwrite to replace it")
    return target


def check_output_path(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """OutputError unless `path` can be written: a .gpkg in an existing, writable folder that
    is either free or may be overwritten."""
    target = Path(path)
    if target.suffix.lower() != ".gpkg":
        raise OutputError(f"the output must be a GeoPackage (.gpkg): {target}")
    return _check_writable(target, overwrite)


def _geotiff(path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if target.suffix.lower() not in (".tif", ".tiff"):
        raise OutputError(f"the probabilities file must be a GeoTIFF (.tif or .tiff): {target}")
    return target


def check_probabilities_path(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """The kept probability GeoTIFF: the GeoPackage's rules, and a .tif or .tiff name."""
    return _check_writable(_geotiff(path), overwrite)


def probability_paths(path: str | os.PathLike[str], groups: int) -> list[Path]:
    """Where each mosaic group's probabilities are kept, in the plan's group order: `path`
    itself for one group; for several, `<stem>_1<suffix>` … `<stem>_N<suffix>` beside it,
    as one GeoTIFF cannot hold grids in several CRSs."""
    target = Path(path)
    if groups == 1:
        return [target]
    return [target.with_name(f"{target.stem}_{k}{target.suffix}") for k in range(1, groups + 1)]


def check_probabilities_paths(
    path: str | os.PathLike[str],
    groups: int,
    overwrite: bool = False,
    inputs: dict[str, str | os.PathLike[str]] | None = None,
) -> list[Path]:
    """Every file `--keep-probabilities path` will write for `groups` mosaic groups
    (probability_paths), checked before any work: check_probabilities_path's rules, and
    none of them one of `inputs` (label → path, as check_distinct)."""
    targets = probability_paths(_geotiff(path), groups)
    for target in targets:
        check_distinct({**(inputs or {}), "probabilities file": target})
        check_probabilities_path(target, overwrite)
    return targets


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file: equal once links are resolved, or the same inode."""
    try:
        if os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b)):
            return True
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_distinct(paths: dict[str, str | os.PathLike[str] | None]) -> None:
    """OutputError when two of the named paths (inputs and outputs, by label) are one file,
    whatever --overwrite says: an output must never replace an input or another output."""
    named = [(label, path) for label, path in paths.items() if path is not None]
    for i, (first, a) in enumerate(named):
        for second, b in named[i + 1 :]:
            if same_file(a, b):
                raise OutputError(
                    f"the {second} {b} is the same file as the {first}; choose another path"
                )


def layer_names(prompts: Sequence[str]) -> dict[str, str]:
    """prompt → layer: "saymap" for one prompt (what every one-prompt user already has),
    else "saymap_<slug>" per prompt (lowercase, runs of other characters → "_"), made
    unique with a number where two prompts slug alike."""
    if len(prompts) == 1:
        return {prompts[0]: LAYER}
    names: dict[str, str] = {}
    for prompt in prompts:
        slug = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_") or "prompt"
        name, n = f"{LAYER}_{slug}", 2
        while name in names.values():
            name, n = f"{LAYER}_{slug}_{n}", n + 1
        names[prompt] = name
    return names


def _remove(path: Path) -> None:
    for suffix in ("", *_SIDECARS):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")


class GeoPackageWriter:
    """Append batches of polygons and their fields to one or more layers; `commit()` moves
    the file into place with every layer named in `layers` (empty ones too)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        crs_wkt: str,
        overwrite: bool = False,
        layers: Sequence[str] = (LAYER,),
        temp_dir: str | os.PathLike[str] | None = None,
    ):
        """`temp_dir`: where the file is written before it is renamed into place (same
        filesystem as `path`); default beside it, as a hidden name."""
        self.path = check_output_path(path, overwrite)
        self.crs_wkt = crs_wkt
        self.overwrite = overwrite
        self.layers = tuple(dict.fromkeys(layers))
        self.count = 0
        self.counts = dict.fromkeys(self.layers, 0)  # features per layer
        self._created: set[str] = set()
        name = f".{self.path.stem}.{uuid.uuid4().hex[:12]}.tmp.gpkg"
        self._temp = Path(temp_dir) / name if temp_dir is not None else self.path.with_name(name)

    def __enter__(self) -> GeoPackageWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        _remove(self._temp)  # after commit() it is gone already; on error nothing is left

    def write(
        self, geometries: Sequence[BaseGeometry], fields: dict[str, Sequence], layer: str = LAYER
    ) -> None:
        """One batch: polygons in the output CRS and one array per name in FIELDS."""
        missing = [name for name in FIELDS if name not in fields]
        if missing:
            raise ValueError(f"fields missing from the batch: {missing}")
        if layer not in self.counts:
            raise ValueError(f"layer {layer!r} is not one of this writer's {self.layers}")
        if len(geometries) == 0 and layer in self._created:
            return
        data = [
            np.asarray(fields[name], dtype=np.float64 if name in _FLOAT_FIELDS else object)
            for name in FIELDS
        ]
        try:
            pyogrio.raw.write(
                str(self._temp),
                geometry=shapely.to_wkb(np.asarray(geometries, dtype=object)),
                field_data=data,
                fields=list(FIELDS),
                crs=self.crs_wkt,
                driver="GPKG",
                layer=layer,
                geometry_type=GEOMETRY_TYPE,
                append=layer in self._created,
            )
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from exc
        self._created.add(layer)
        self.count += len(geometries)
        self.counts[layer] += len(geometries)

    def commit(self) -> int:
        """Put the finished file at its path (an empty layer for each with no feature)."""
        for layer in self.layers:
            if layer not in self._created:
                self.write([], {name: [] for name in FIELDS}, layer)
        place(self._temp, self.path, self.overwrite)
        return self.count


def place(temp: Path, target: Path, overwrite: bool) -> None:
    """Move a finished temporary file to its path, atomically; an existing file is replaced
    only when `overwrite` says so (one that appeared meanwhile is kept)."""
    if overwrite:
        os.replace(temp, target)
        return
    try:
        os.link(temp, target)  # atomic, and refuses to clobber a file
    except FileExistsError as exc:
        raise OutputError(
            f"{target} appeared while segmenting; kept it. Pass --overwrite to replace it"
        ) from exc
    except OSError:
        if target.exists():  # a filesystem without hard links
            raise OutputError(f"{target} already exists; pass --overwrite") from None
        os.replace(temp, target)
        return
    os.remove(temp)


@contextlib.contextmanager
def kept_probabilities(
    path: str | os.PathLike[str], overwrite: bool = False, groups: int = 1
) -> Iterator[Path]:
    """`with kept_probabilities(path, groups=n) as temp:` write each group's probability
    GeoTIFF to probability_paths(temp, n), hidden names beside `path`. When the block
    succeeds they are moved to probability_paths(path, n), all or none (a target that
    appeared meanwhile undoes the ones placed before it); when it fails they are removed, so
    a run that fails never creates or truncates a target. A group with nothing to keep
    (outside the AOI) writes no file and gets none."""
    targets = [check_probabilities_path(p, overwrite) for p in probability_paths(path, groups)]
    base = Path(path)
    temp_base = base.with_name(f".{base.stem}.{uuid.uuid4().hex[:12]}.tmp{base.suffix}")
    temps = probability_paths(temp_base, groups)
    placed: list[Path] = []
    try:
        yield temp_base
        for temp, target in zip(temps, targets, strict=True):
            if temp.exists():
                place(temp, target, overwrite)
                placed.append(target)
    except BaseException:
        if not overwrite:  # each placed target is new: nothing was there before
            for target in placed:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(target)
        raise
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)
