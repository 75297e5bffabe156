"""Training samples from what analysts have: rasters plus a polygon layer with a class field.

Weak samples: a chip centred on each feature, the class name as the expression and that
feature as the mask; or (`group=True`) a grid of chips with one sample per class present,
masking all its features ("all buildings"). Full samples: sentences from a text field of
the layer, or from a CSV (feature id or WKT, sentence) or GeoJSON (geometry, sentence), or
(`sentences_from_geometry=True`) sentences computed from the polygons on grid chips
("the largest building", see geometry_expressions).

Everything is checked before anything is read or written: a missing class field, a class
field empty everywhere, labels that miss every raster, or a sentence pointing at a feature
id the layer lacks each stop with one DatasetError. Pixels are read lazily, per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from shapely.geometry import box

from saymap.engine.class_names import group_expression
from saymap.engine.errors import DatasetError
from saymap.engine.raster import RasterSpec, WindowReader, open_raster
from saymap.engine.resolution import working_spec
from saymap.training.chips import ChipFolderDataset, ChipRecord, centred_window, grid, write_chips
from saymap.training.labels import LabelFeature, LabelReport, prepare_features, read_layer
from saymap.training.samples import Sample, SampleMeta, Subset
from saymap.training.sentences import read_sentences, rows_from_dicts, sentence_records

__all__ = [
    "ChipFolderDataset",
    "LayerDataset",
    "LayerSource",
    "build_layer_dataset",
    "write_chips",
]
MIN_GROUP_PIXELS = 16  # a class must cover this many pixels of a grid chip to be a sample


@dataclass(frozen=True)
class LayerSource:
    """A raster to cut chips from; `bands` and `assume_crs` as for `saymap segment`."""

    path: Path
    bands: str | None = None
    assume_crs: str | None = None


@dataclass
class DatasetReport:
    labels: list[LabelReport] = field(default_factory=list)
    n_weak: int = 0
    n_full: int = 0
    held_out: int = 0  # chips dropped because they touch a scorecard hold-out

    def lines(self) -> list[str]:
        out = [line for r in self.labels for line in r.lines()]
        out.append(f"samples: {self.n_weak} weak (class name), {self.n_full} full (sentence)")
        if self.held_out:
            out.append(
                f"{self.held_out} chip(s) never trained on: they touch the real-imagery "
                "hold-out (the east strip that `saymap scorecard` scores)"
            )
        return out


class LayerDataset:
    """Samples cut from rasters around labelled features; pixels read on demand.

    The specs are on the working grid (`gsd_m`), so chips show objects at the size the
    model sees at inference. With `scale_jitter` j > 0 each read takes a window 1/(1+j) to
    1+j times the chip's side around the same centre and resamples it to the chip size.
    """

    def __init__(
        self,
        specs: list[RasterSpec],
        records: list[ChipRecord],
        report,
        scale_jitter: float = 0.0,
    ) -> None:
        self.specs = specs
        self.records = records
        self.report = report
        self.scale_jitter = scale_jitter
        self.held: frozenset[int] = frozenset()  # records training must not use (hold-outs)

    def __len__(self) -> int:
        return len(self.records)

    def meta(self, index: int) -> SampleMeta:
        r = self.records[index]
        return SampleMeta(r.kind, r.class_name, r.sample_id, "layer")

    def window_of(self, index: int) -> tuple[RasterSpec, Window]:
        r = self.records[index]
        return self.specs[r.raster], Window(r.col, r.row, r.size, r.size)

    def __getitem__(self, index: int) -> Sample:
        r = self.records[index]
        spec, window = self.window_of(index)
        side = jittered_side(r.size, self.scale_jitter)
        if side != r.size:
            shift = (side - r.size) // 2
            window = Window(r.col - shift, r.row - shift, side, side)
        with WindowReader(spec) as reader:
            pixels, _valid = reader.read(window)
        if side != r.size:
            pixels = resize_pixels(pixels, r.size)
        mask = rasterize(
            [(g, 1) for g in r.geometries if not g.is_empty],
            out_shape=(r.size, r.size),
            transform=window_transform(window, spec.transform) @ Affine.scale(side / r.size),
            fill=0,
            dtype="uint8",
        )
        return Sample(
            image=np.ascontiguousarray(pixels.transpose(1, 2, 0)),
            mask=mask,
            expression=r.expression,
            kind=r.kind,
            expression_type=r.expression_type,
            class_name=r.class_name,
            sample_id=r.sample_id,
            source="layer",
        )


def jittered_side(size: int, jitter: float) -> int:
    """A chip side drawn log-uniformly in [size / (1 + jitter), size * (1 + jitter)]."""
    if jitter <= 0:
        return size
    bound = math.log1p(jitter)
    return max(8, round(size * math.exp(np.random.default_rng().uniform(-bound, bound))))


def resize_pixels(pixels: np.ndarray, size: int) -> np.ndarray:
    """(3, h, w) uint8 → (3, size, size): area-averaged when shrinking, bilinear otherwise."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(pixels).float()[None]
    shrink = pixels.shape[-1] > size
    out = F.interpolate(
        tensor,
        size=(size, size),
        mode="area" if shrink else "bilinear",
        align_corners=None if shrink else False,
    )
    return out[0].round().clamp(0, 255).to(torch.uint8).numpy()


def _touching_holdouts(
    records: list[ChipRecord], specs: list[RasterSpec], margin: float
) -> frozenset[int]:
    """Records whose chip touches the kept-back strip of a shared real raster (holdouts.py);
    `margin` (a share of the chip side) covers what scale jitter reads around a chip."""
    from saymap.training.holdouts import holdout_columns

    strips = {}
    for i, spec in enumerate(specs):
        native = spec.native
        width = native.width if native else spec.width
        first = holdout_columns(spec.path, width)
        if first is not None:
            transform = native.transform if native else spec.transform
            # the strip in this spec's pixel columns (north-up rasters)
            strips[i] = (~spec.transform @ (transform @ (first, 0)))[0]
    return frozenset(
        k
        for k, r in enumerate(records)
        if r.raster in strips and r.col + r.size * (1 + margin) > strips[r.raster]
    )


def _weak_records(
    i: int, spec: RasterSpec, features: list[LabelFeature], size: int, group: bool
) -> list[ChipRecord]:
    stem = Path(spec.path).stem
    records = []
    if not group:
        for f in features:
            col, row = centred_window(spec, f.geometry, size)
            records.append(
                ChipRecord(
                    i,
                    col,
                    row,
                    size,
                    (f.geometry,),
                    f.class_name,
                    "weak",
                    "class",
                    f.class_name,
                    f"{stem}/{f.fid}",
                )
            )
        return records
    tree = shapely.STRtree([f.geometry for f in features])
    pixel_area = abs(spec.transform.a * spec.transform.e - spec.transform.b * spec.transform.d)
    for row in grid(spec.height, size):
        for col in grid(spec.width, size):
            window = Window(col, row, size, size)
            tile = box(*window_bounds(window, spec.transform))
            hits = [features[k] for k in tree.query(tile, predicate="intersects")]
            for cls in sorted({f.class_name for f in hits}):
                geoms = tuple(f.geometry for f in hits if f.class_name == cls)
                covered = shapely.union_all(geoms).intersection(tile).area / pixel_area
                if covered >= MIN_GROUP_PIXELS:
                    records.append(
                        ChipRecord(
                            i,
                            col,
                            row,
                            size,
                            geoms,
                            group_expression(cls),
                            "weak",
                            "group",
                            cls,
                            f"{stem}/r{row}c{col}/{cls}",
                        )
                    )
    return records


def build_layer_dataset(
    sources: list[LayerSource],
    labels: str | Path,
    *,
    class_field: str | None = None,
    class_name: str | None = None,
    text_field: str | None = None,
    id_field: str | None = None,
    expressions: str | Path | None = None,
    sentences: list[dict] | None = None,
    label_crs: str | None = None,
    classes: list[str] | None = None,
    chip_size: int = 256,
    group: bool = False,
    layer: str | None = None,
    sentences_from_geometry: bool = False,
    gsd_m: float | None = None,
    scale_jitter: float = 0.0,
    exclude_holdouts: bool = True,
) -> LayerDataset:
    """Check labels against the rasters and list the samples (reads no pixels)."""
    if chip_size % 32 or chip_size < 32:
        raise DatasetError(f"chip size must be a multiple of 32, got {chip_size}")
    if not sources:
        raise DatasetError("name at least one raster")
    raw = read_layer(labels, layer)
    gsd = "native" if gsd_m is None else gsd_m  # chips on the grid the model segments on
    specs = [
        working_spec(open_raster(s.path, bands=s.bands, assume_crs=s.assume_crs), gsd, None)[0]
        for s in sources
    ]
    report = DatasetReport()
    per_raster: list[list[LabelFeature]] = []
    for spec in specs:
        features, rep = prepare_features(
            raw,
            spec,
            class_field=class_field,
            class_name=class_name,
            text_field=text_field,
            id_field=id_field,
            label_crs=label_crs,
            classes=classes,
            require_overlap=len(specs) == 1,
        )
        per_raster.append(features)
        report.labels.append(rep)
    if not any(per_raster):
        raise DatasetError(
            f"no feature of {Path(labels).name} overlaps any of the {len(specs)} rasters; "
            + "; ".join(f"label CRS {r.crs}: {r.crs_rule}" for r in report.labels[:1])
        )
    records: list[ChipRecord] = []
    for i, (spec, features) in enumerate(zip(specs, per_raster, strict=True)):
        records += _weak_records(i, spec, features, chip_size, group)
        if sentences_from_geometry:  # imported here: geopandas only for layers that ask
            from saymap.training.geometry_expressions import chip_records

            records += chip_records(i, spec, features, chip_size, skip_group=group)
        stem = Path(spec.path).stem
        for f in features:
            if f.text:
                col, row = centred_window(spec, f.geometry, chip_size)
                records.append(
                    ChipRecord(
                        i,
                        col,
                        row,
                        chip_size,
                        (f.geometry,),
                        f.text,
                        "full",
                        "sentence",
                        f.class_name,
                        f"{stem}/{f.fid}/text",
                    )
                )
    common = (raw, specs, per_raster, id_field, label_crs, chip_size)
    if expressions is not None:
        path = Path(expressions)
        rows = read_sentences(path, specs[0].crs.to_wkt(), id_field, label_crs)
        records += sentence_records(rows, path.name, *common)
    if sentences:
        records += sentence_records(rows_from_dicts(sentences), "sentence", *common, unit="item")
    held = _touching_holdouts(records, specs, margin=scale_jitter)
    report.held_out = len(held)
    if exclude_holdouts:  # else the caller's split keeps them out of training (splits.py)
        records = [r for k, r in enumerate(records) if k not in held]
        held = frozenset()
    report.n_weak = sum(r.kind == "weak" for r in records)
    report.n_full = sum(r.kind == "full" for r in records)
    for rep in report.labels:
        rep.n_sentences = report.n_full
    dataset = LayerDataset(specs, records, report, scale_jitter)
    dataset.held = held
    return dataset


class LayerSubset(Subset):
    """A subset of a LayerDataset that still knows its windows and its report."""

    def __init__(self, dataset: LayerDataset, indices: list[int]) -> None:
        super().__init__(dataset, indices)
        self.report = dataset.report

    def window_of(self, index: int):
        return self.dataset.window_of(self.indices[index])
