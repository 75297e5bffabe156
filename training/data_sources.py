"""From a recipe's [data] table, or a train request's dataset, to training and validation
datasets."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from saymap.engine.errors import DatasetError
from saymap.training.recipe import DataSection, Recipe
from saymap.training.samples import Sample, SampleDataset, SampleMeta, Subset, sample_meta

if TYPE_CHECKING:
    from saymap.engine.aoi import AOI
    from saymap.training.datasets import LayerDataset

log = logging.getLogger(__name__)

# What a feature's class name trains in a train request: "group" (every feature of the class
# in a grid chip, "all buildings", as segment jobs read a class-name prompt and as the default
# model learnt it) or "feature" (one chip per feature, its outline only: WREL's weak label).
CLASS_SAMPLES = ("group", "feature")


class ConcatDataset:
    """Several datasets read as one, in order."""

    def __init__(self, parts: Sequence[SampleDataset]) -> None:
        self.parts = [p for p in parts if len(p)]
        self.offsets = []
        total = 0
        for part in self.parts:
            self.offsets.append(total)
            total += len(part)
        self.total = total

    def __len__(self) -> int:
        return self.total

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.total:
            raise IndexError(index)
        k = bisect.bisect_right(self.offsets, index) - 1
        return k, index - self.offsets[k]

    def __getitem__(self, index: int) -> Sample:
        k, i = self._locate(index)
        return self.parts[k][i]

    def meta(self, index: int) -> SampleMeta:
        k, i = self._locate(index)
        return sample_meta(self.parts[k], i)


def _evenly(dataset: SampleDataset, limit: int | None) -> SampleDataset:
    """At most `limit` samples spread evenly over the set (deterministic)."""
    from saymap.training.splits import evenly_spaced

    if limit is None or len(dataset) <= limit:
        return dataset
    return Subset(dataset, evenly_spaced(len(dataset), limit))


LAYER_KEYS = {
    "rasters": "raster paths to cut chips from",
    "labels": "a polygon layer (GeoPackage, GeoJSON, Shapefile)",
    "class_field": "the field holding each feature's class name",
    "class_name": "one class name for every feature (instead of class_field)",
    "text_field": "a field holding full sentences",
    "id_field": "the field sentences refer to features by",
    "expressions": "a CSV or GeoJSON of (feature id or geometry, sentence)",
    "sentences": "a list of {feature_id | wkt, sentence} tables",
    "label_crs": "the labels' CRS when the file does not say",
    "validation_fraction": "share of features held out for validation (by feature id)",
    "validation_area": "{bounds = [...] or wkt = '...', crs = '...'}: chips inside validate, "
    "chips outside train, chips across its edge are left out",
    "group": "also make one 'all <class>' sample per chip",
    "region": "[col_off, row_off, width, height]: only chips inside this pixel window",
    "generate_sentences": "also full sentences computed from the polygons on grid chips "
    "('the largest building', 'buildings larger than 200 m²', ...)",
}


def layer_datasets(
    spec: dict, chip_size: int, gsd_m: float | None = None, scale_jitter: float = 0.0
) -> tuple[SampleDataset, SampleDataset | None]:
    """One [[data.layers]] table: rasters + a label layer (+ sentences) as train/validation."""
    from saymap.engine.aoi import aoi_from_json
    from saymap.training.datasets import LayerSource, build_layer_dataset
    from saymap.training.splits import split_validation

    unknown = sorted(set(spec) - set(LAYER_KEYS))
    if unknown:
        raise DatasetError(
            f"unknown key(s) in a [[data.layers]] table: {', '.join(unknown)}; "
            f"known: {', '.join(LAYER_KEYS)}"
        )
    if "rasters" not in spec or "labels" not in spec:
        raise DatasetError("each [[data.layers]] table needs `rasters` and `labels`")
    built = build_layer_dataset(
        [LayerSource(Path(p)) for p in spec["rasters"]],
        spec["labels"],
        class_field=spec.get("class_field"),
        class_name=spec.get("class_name"),
        text_field=spec.get("text_field"),
        id_field=spec.get("id_field"),
        expressions=spec.get("expressions"),
        sentences=spec.get("sentences"),
        label_crs=spec.get("label_crs"),
        chip_size=chip_size,
        group=bool(spec.get("group", False)),
        sentences_from_geometry=bool(spec.get("generate_sentences", False)),
        gsd_m=gsd_m,
        scale_jitter=scale_jitter,
        exclude_holdouts=False,  # split_validation keeps them out of training
    )
    for line in built.report.lines():
        log.info("%s: %s", Path(spec["labels"]).name, line)
    keep = list(range(len(built.records)))
    if "region" in spec:  # a spatial split: chips wholly inside the window (native pixels)
        native = built.specs[0].native
        scale = native.scale if native is not None else 1.0
        col0, row0, width, height = (round(int(v) / scale) for v in spec["region"])
        keep = [
            k
            for k in keep
            if col0 <= built.records[k].col
            and built.records[k].col + built.records[k].size <= col0 + width
            and row0 <= built.records[k].row
            and built.records[k].row + built.records[k].size <= row0 + height
        ]
        if not keep:
            raise DatasetError(f"no chip of {spec['labels']} lies inside region {spec['region']}")
    if "validation_area" in spec and "validation_fraction" in spec:
        raise DatasetError("give validation_area or validation_fraction, not both")
    area = spec.get("validation_area")
    return split_validation(
        built,
        keep,
        area=aoi_from_json(area, "validation area") if area is not None else None,
        fraction=float(spec.get("validation_fraction", 0.0)),
    )


def request_dataset(
    dataset: dict, chip_size: int = 256, gsd_m: float | None = None
) -> tuple[LayerDataset, AOI | None, float]:
    """The train request's dataset as built samples (no pixels read), with its validation
    area or fraction (0.0 for none)."""
    from saymap.engine.aoi import aoi_from_json
    from saymap.training.datasets import LayerSource, build_layer_dataset

    validation = {k: v for k, v in (dataset.get("validation") or {}).items() if v is not None}
    unknown = sorted(set(validation) - {"fraction", "area"})
    if unknown or len(validation) > 1:
        raise DatasetError(
            "validation takes one of {'fraction': f} or {'area': {...}}; "
            f"got {', '.join(sorted(validation))}"
        )
    area = aoi_from_json(validation["area"], "validation area") if "area" in validation else None
    fraction = float(validation.get("fraction", 0.0))
    if not 0.0 <= fraction < 1.0:
        raise DatasetError(f"validation fraction must be in [0, 1), got {fraction}")
    class_samples = dataset.get("class_samples") or "group"
    if class_samples not in CLASS_SAMPLES:
        raise DatasetError(
            f"class_samples is one of {', '.join(CLASS_SAMPLES)}, got {class_samples!r}"
        )
    built = build_layer_dataset(
        [LayerSource(Path(p)) for p in dataset["rasters"]],
        dataset["labels"],
        class_field=dataset.get("class_field"),
        id_field=dataset.get("id_field"),
        sentences=dataset.get("sentences") or None,
        chip_size=chip_size,
        group=class_samples == "group",
        gsd_m=gsd_m,
        exclude_holdouts=False,  # split_validation keeps them out of training
    )
    return built, area, fraction


def datasets_from_layers(
    dataset: dict, chip_size: int = 256, gsd_m: float | None = None
) -> tuple[SampleDataset, SampleDataset | None]:
    """The train request's dataset (rasters, labels, class_field, sentences, validation,
    class_samples) as (train, validation). validation: {"fraction": f} holds out features by
    id (all their samples go together; a group chip by its place); {"area": {"bounds" |
    "wkt", "crs"}} validates on the chips inside an area and trains on those outside it;
    None trains on everything, validates on nothing.
    """
    from saymap.training.splits import split_validation

    built, area, fraction = request_dataset(dataset, chip_size, gsd_m)
    return split_validation(built, range(len(built)), area=area, fraction=fraction)


def inherit_working_resolution(recipe: Recipe) -> float | None:
    """A fine-tune cuts chips at its base model's gsd_m unless the recipe names one, so the
    model keeps seeing objects at the size it learnt them (and its card keeps the value)."""
    if recipe.data.gsd_m is None and recipe.model.init:
        from saymap.engine.model.checkpoint import read_card
        from saymap.engine.registry import resolve_checkpoint
        from saymap.engine.resolution import CardResolution

        recipe.data.gsd_m = CardResolution.from_card(
            read_card(resolve_checkpoint(recipe.model.init))
        ).gsd_m
    return recipe.data.gsd_m


def build_datasets(data: DataSection) -> tuple[SampleDataset, SampleDataset | None]:
    """Every source the recipe names, concatenated: (train, validation)."""
    train: list[SampleDataset] = []
    val: list[SampleDataset] = []
    if data.synthetic:
        from saymap.training.synthetic.store import load_synthetic

        root = Path(data.synthetic)
        train.append(load_synthetic(root, "train"))
        val.append(load_synthetic(root, "val"))
    for spec in data.layers:
        part_train, part_val = layer_datasets(spec, data.chip_size, data.gsd_m, data.scale_jitter)
        train.append(part_train)
        if part_val is not None:
            val.append(part_val)
    if data.dubai:
        from saymap.training.dubai import DubaiDataset

        jitter = data.scale_jitter if data.dubai_scale_jitter is None else data.dubai_scale_jitter
        train.append(DubaiDataset(Path(data.dubai), data.chip_size, scale_jitter=jitter))
    if data.refsegrs:
        from saymap.training.formats import load_refsegrs

        train.append(load_refsegrs(Path(data.refsegrs), "train"))
        val.append(load_refsegrs(Path(data.refsegrs), "val"))
    if data.rrsisd:
        from saymap.training.formats import load_rrsisd

        train.append(load_rrsisd(Path(data.rrsisd), "train"))
        val.append(load_rrsisd(Path(data.rrsisd), "val"))
    if not train:
        raise DatasetError(
            "the recipe names no training data: set data.synthetic, data.layers, "
            "data.refsegrs or data.rrsisd (or pass --synthetic DIR)"
        )
    train_set = _evenly(ConcatDataset(train), data.max_train_samples)
    val_set = _evenly(ConcatDataset(val), data.max_val_samples) if val else None
    if len(train_set) == 0:
        raise DatasetError("the training data holds no samples")
    log.info(
        "training on %d samples, validating on %d", len(train_set), len(val_set) if val_set else 0
    )
    return train_set, val_set
