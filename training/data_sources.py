"""From a recipe's [data] table to the training and validation datasets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from saymap.engine.errors import DatasetError
from saymap.training.recipe import DataSection
from saymap.training.samples import Sample, SampleDataset

log = logging.getLogger(__name__)


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

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.total:
            raise IndexError(index)
        k = max(i for i, off in enumerate(self.offsets) if off <= index)
        return self.parts[k][index - self.offsets[k]]


class Subset:
    def __init__(self, dataset: SampleDataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        return self.dataset[self.indices[index]]


def _evenly(dataset: SampleDataset, limit: int | None) -> SampleDataset:
    """At most `limit` samples spread evenly over the set (deterministic)."""
    if limit is None or len(dataset) <= limit:
        return dataset
    step = len(dataset) / limit
    return Subset(dataset, [int(i * step) for i in range(limit)])


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
        from saymap.training.layer_source import layer_datasets

        part_train, part_val = layer_datasets(spec, data.chip_size)
        train.append(part_train)
        if part_val is not None:
            val.append(part_val)
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
