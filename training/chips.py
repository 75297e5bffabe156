"""Chips on disk and the windows they come from.

`write_chips` stores any dataset that can say where each sample's window lies as
georeferenced chip and mask GeoTIFFs plus samples.jsonl; `ChipFolderDataset` reads such a
folder back. `centred_window` picks the chip around a geometry.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import transform as window_transform
from shapely.geometry.base import BaseGeometry

from saymap.engine.errors import DatasetError, OutputError
from saymap.engine.raster import RasterSpec
from saymap.training.samples import Sample


@dataclass(frozen=True)
class ChipRecord:
    raster: int
    col: int
    row: int
    size: int
    geometries: tuple[BaseGeometry, ...]  # in the raster's CRS
    expression: str
    kind: str
    expression_type: str
    class_name: str
    sample_id: str


def centred_window(spec: RasterSpec, geometry: BaseGeometry, size: int) -> tuple[int, int]:
    x0, y0, x1, y1 = geometry.bounds
    inverse = ~spec.transform
    cols, rows = zip(*(inverse @ (x, y) for x in (x0, x1) for y in (y0, y1)), strict=True)
    cx, cy = (min(cols) + max(cols)) / 2, (min(rows) + max(rows)) / 2
    col, row = round(cx - size / 2), round(cy - size / 2)
    # Inside the raster where it is big enough; WindowReader pads (and marks) the rest.
    if spec.width >= size:
        col = min(max(col, 0), spec.width - size)
    if spec.height >= size:
        row = min(max(row, 0), spec.height - size)
    return col, row


def grid(length: int, size: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size, size))
    return [*starts, length - size]


def write_chips(dataset, out: str | Path) -> int:
    """Write every sample as georeferenced chip + mask GeoTIFFs and samples.jsonl.

    Into a temporary sibling first and renamed at the end, so a failure leaves nothing.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out} already exists and is not empty; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        lines = []
        for k in range(len(dataset)):
            sample = dataset[k]
            spec, window = dataset.window_of(k)
            profile = dict(
                driver="GTiff",
                width=window.width,
                height=window.height,
                crs=spec.crs,
                transform=window_transform(window, spec.transform),
                compress="deflate",
            )
            name = f"{k:06d}.tif"
            with rasterio.open(
                tmp / "images" / name, "w", count=3, dtype="uint8", photometric="RGB", **profile
            ) as dst:
                dst.write(sample.image.transpose(2, 0, 1))
            with rasterio.open(tmp / "masks" / name, "w", count=1, dtype="uint8", **profile) as d:
                d.write(sample.mask[None])
            lines.append(
                json.dumps(
                    {
                        "file": name,
                        "sample_id": sample.sample_id,
                        "expression": sample.expression,
                        "kind": sample.kind,
                        "type": sample.expression_type,
                        "class": sample.class_name,
                        "raster": spec.path,
                        "window": [window.col_off, window.row_off, window.width, window.height],
                    }
                )
            )
        (tmp / "samples.jsonl").write_text("\n".join(lines) + "\n")
        (tmp / "report.txt").write_text("\n".join(dataset.report.lines()) + "\n")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(dataset)


class ChipFolderDataset:
    """A folder written by `write_chips` (`saymap data chips`), read lazily."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        index = self.root / "samples.jsonl"
        if not index.is_file():
            raise DatasetError(f"{self.root} is not a chip folder: no samples.jsonl")
        self.records = [json.loads(x) for x in index.read_text().splitlines() if x.strip()]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        r = self.records[index]
        with rasterio.open(self.root / "images" / r["file"]) as src:
            image = src.read().transpose(1, 2, 0)
        with rasterio.open(self.root / "masks" / r["file"]) as src:
            mask = src.read(1)
        return Sample(
            np.ascontiguousarray(image),
            mask,
            r["expression"],
            r["kind"],
            r["type"],
            r["class"],
            r["sample_id"],
            "layer",
        )
