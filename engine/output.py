"""The GeoPackage of results: checked before any work, written atomically, never clobbered.

Features go to a temporary file beside the output (same filesystem) in batches, so memory
stays flat however many objects a large raster yields; the file is renamed into place only
when complete. An existing output is kept unless the caller asked to overwrite it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.errors
import shapely
from shapely.geometry.base import BaseGeometry

from saymap.engine.errors import OutputError

LAYER = "saymap"
GEOMETRY_TYPE = "Polygon"  # each feature is one connected object
FIELDS = ("prompt", "score", "area_m2", "model", "run_id", "created_at", "source")
_FLOAT_FIELDS = {"score", "area_m2"}
_SIDECARS = ("-journal", "-wal", "-shm")


def check_output_path(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """OutputError unless `path` can be written: a .gpkg in an existing, writable folder that
    is either free or may be overwritten."""
    target = Path(path)
    if target.suffix.lower() != ".gpkg":
        raise OutputError(f"the output must be a GeoPackage (.gpkg): {target}")
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


def _remove(path: Path) -> None:
    for suffix in ("", *_SIDECARS):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")


class GeoPackageWriter:
    """Append batches of polygons and their fields; `commit()` moves the file into place."""

    def __init__(self, path: str | os.PathLike[str], crs_wkt: str, overwrite: bool = False):
        self.path = check_output_path(path, overwrite)
        self.crs_wkt = crs_wkt
        self.overwrite = overwrite
        self.count = 0
        self._created = False
        self._temp = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:12]}.tmp.gpkg")

    def __enter__(self) -> GeoPackageWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        _remove(self._temp)  # after commit() it is gone already; on error nothing is left

    def write(self, geometries: Sequence[BaseGeometry], fields: dict[str, Sequence]) -> None:
        """One batch: polygons in the output CRS and one array per name in FIELDS."""
        missing = [name for name in FIELDS if name not in fields]
        if missing:
            raise ValueError(f"fields missing from the batch: {missing}")
        if len(geometries) == 0 and self._created:
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
                layer=LAYER,
                geometry_type=GEOMETRY_TYPE,
                append=self._created,
            )
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from exc
        self._created = True
        self.count += len(geometries)

    def commit(self) -> int:
        """Put the finished file at its path (an empty layer if nothing was written)."""
        if not self._created:
            self.write([], {name: [] for name in FIELDS})
        if self.overwrite:
            os.replace(self._temp, self.path)
            return self.count
        try:
            os.link(self._temp, self.path)  # atomic, and refuses to clobber a file
        except FileExistsError as exc:
            raise OutputError(
                f"{self.path} appeared while segmenting; kept it. Pass --overwrite to replace it"
            ) from exc
        except OSError:
            if self.path.exists():  # a filesystem without hard links
                raise OutputError(f"{self.path} already exists; pass --overwrite") from None
            os.replace(self._temp, self.path)
            return self.count
        os.remove(self._temp)
        return self.count
