"""The one sample format every dataset yields and the trainer and evaluator consume.

A `Sample` is one (image, mask, expression) triple. `kind` says what WREL needs to know:
"weak" when the expression is a bare class name (what analysts' layers give), "full" when
it is a sentence. `expression_type` keeps the finer kind for per-type reports: "class",
"attribute", "position", "relation", "comparison" or "group".

Datasets are plain indexable sequences (`__len__`, `__getitem__`) that read lazily from
disk, so holding one costs a list of small records, not the pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

KINDS = ("weak", "full")
# "sentence": a person's own sentence (a layer's text field, a CSV), finer type unknown.
EXPRESSION_TYPES = ("class", "attribute", "position", "relation", "comparison", "group", "sentence")


@dataclass(frozen=True)
class Sample:
    """image: (H, W, 3) uint8 RGB; mask: (H, W) uint8 in {0, 1}, same H and W."""

    image: np.ndarray
    mask: np.ndarray
    expression: str
    kind: str  # "weak" (bare class name) or "full" (a sentence)
    expression_type: str  # one of EXPRESSION_TYPES
    class_name: str
    sample_id: str
    source: str  # "synthetic", "layer", "refsegrs", "rrsisd"

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(
                f"sample {self.sample_id}: image must be (H, W, 3) uint8, "
                f"got {self.image.shape} {self.image.dtype}"
            )
        if self.mask.shape != self.image.shape[:2]:
            raise ValueError(
                f"sample {self.sample_id}: mask {self.mask.shape} does not match image "
                f"{self.image.shape[:2]}"
            )
        if self.kind not in KINDS:
            raise ValueError(f"sample {self.sample_id}: kind must be one of {KINDS}")


@runtime_checkable
class SampleDataset(Protocol):
    """What the trainer and `saymap eval` accept: a sized, indexable source of Samples."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


class SampleList:
    """A dataset over samples already in memory (tests, small fixtures, concatenations)."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self._samples = list(samples)

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, index: int) -> Sample:
        return self._samples[index]


@dataclass(frozen=True)
class SampleMeta:
    """What WREL's pools need of a sample, without reading its pixels."""

    kind: str
    class_name: str
    sample_id: str
    source: str


def sample_meta(dataset: SampleDataset, index: int) -> SampleMeta:
    """A sample's metadata: from the dataset's own `meta` where it has one (no pixels read),
    else from the sample itself."""
    meta = getattr(dataset, "meta", None)
    if meta is not None:
        return meta(index)
    s = dataset[index]
    return SampleMeta(s.kind, s.class_name, s.sample_id, s.source)


class Subset:
    """The samples of `dataset` at `indices`, in that order (splits, even thinning)."""

    def __init__(self, dataset: SampleDataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        return self.dataset[self.indices[index]]

    def meta(self, index: int) -> SampleMeta:
        return sample_meta(self.dataset, self.indices[index])


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """Any boolean, 0/1 or 0/255 mask as uint8 {0, 1}; 0/255 is cut half-way (lossy files)."""
    if mask.dtype == bool or mask.max(initial=0) <= 1:
        return (mask > 0).astype(np.uint8)
    return (mask >= 128).astype(np.uint8)


def to_pixels(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]: the model's input convention."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0
