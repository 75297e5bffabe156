"""Dubai land cover (Humans in the Loop / MBRSC) as training samples: one group sample
("all roads") per class present in each grid chip of an image.

The images carry no georeference and no stated ground resolution, so chips are cut at the
images' own resolution; the scorecard segments them at native resolution too. Their tile
folders differ in scale (roads and houses about twice as many pixels across in one folder
as in another), so `scale_jitter` reads each chip from a window 1/(1+j) to 1+j times its side
and resizes it back: one model for every scale, and wider windows that show a lake or the
sea with its shore. The tile folder the scorecard keeps back (holdouts.DUBAI_HOLDOUT_TILE)
is never listed here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saymap.engine.class_names import group_expression
from saymap.engine.errors import DatasetError
from saymap.training.chips import grid
from saymap.training.datasets import jittered_side, resize_pixels
from saymap.training.holdouts import dubai_images
from saymap.training.metrics import resize_nearest
from saymap.training.samples import Sample, SampleMeta

# Mask RGB per class, read from the pixels (mask_colours_DERIVED.json in the source).
CLASS_COLOURS = {
    "building": (60, 16, 152),
    "road": (110, 193, 228),
    "vegetation": (254, 221, 58),
    "water": (226, 169, 41),
}
MIN_CLASS_PIXELS = 64  # a class must cover this much of a chip to make a sample


def class_mask(rgb: np.ndarray, class_name: str) -> np.ndarray:
    """(H, W, 3) colour mask → (H, W) uint8 {0, 1} for one class."""
    return np.all(rgb == np.asarray(CLASS_COLOURS[class_name], np.uint8), axis=-1).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _load(path: str) -> np.ndarray:
    from PIL import Image  # masks are RGB or palette PNGs: read as RGB before matching

    return np.asarray(Image.open(path).convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 colours of a mask PNG (RGB or palette)."""
    return _load(str(path))


def unscored(rgb: np.ndarray) -> np.ndarray:
    """Pixels labelled 'Unlabeled' (grey) or not annotated (black): no class's truth."""
    return np.all(rgb == 155, axis=-1) | np.all(rgb == 0, axis=-1)


@dataclass(frozen=True)
class _Record:
    pair: int
    col: int
    row: int
    class_name: str


class DubaiDataset:
    """Group samples from every Dubai tile folder except the held-out one."""

    def __init__(
        self,
        root: str | Path,
        chip_size: int = 256,
        classes: tuple[str, ...] = tuple(CLASS_COLOURS),
        scale_jitter: float = 0.0,
    ) -> None:
        self.pairs = dubai_images(Path(root), holdout=False)
        if not self.pairs:
            raise DatasetError(f"no dubai_landcover images under {root}")
        unknown = sorted(set(classes) - set(CLASS_COLOURS))
        if unknown:
            raise DatasetError(f"dubai_landcover has no class {', '.join(unknown)}")
        self.chip_size = chip_size
        self.scale_jitter = scale_jitter
        self.records: list[_Record] = []
        for k, (_, mask_path) in enumerate(self.pairs):
            rgb = _load(str(mask_path))
            height, width = rgb.shape[:2]
            for row in grid(height, chip_size):
                for col in grid(width, chip_size):
                    chip = rgb[row : row + chip_size, col : col + chip_size]
                    for name in classes:
                        if int(class_mask(chip, name).sum()) >= MIN_CLASS_PIXELS:
                            self.records.append(_Record(k, col, row, name))

    def __len__(self) -> int:
        return len(self.records)

    def _sample_id(self, r: _Record) -> str:
        image = self.pairs[r.pair][0]
        return f"dubai/{image.parent.parent.name}/{image.stem}/r{r.row}c{r.col}/{r.class_name}"

    def meta(self, index: int) -> SampleMeta:
        r = self.records[index]
        return SampleMeta("weak", r.class_name, self._sample_id(r), "dubai")

    def __getitem__(self, index: int) -> Sample:
        r = self.records[index]
        image_path, mask_path = self.pairs[r.pair]
        s = self.chip_size
        pixels = _load(str(image_path))
        height, width = pixels.shape[:2]
        side = min(jittered_side(s, self.scale_jitter), height, width)
        row = _centred(r.row, s, side, height)
        col = _centred(r.col, s, side, width)
        image = pixels[row : row + side, col : col + side]
        mask = class_mask(_load(str(mask_path))[row : row + side, col : col + side], r.class_name)
        if side != s:
            image = resize_pixels(np.ascontiguousarray(image.transpose(2, 0, 1)), s).transpose(
                1, 2, 0
            )
            mask = resize_nearest(mask, s)  # labels are not blended
        return Sample(
            image=np.ascontiguousarray(image),
            mask=mask,
            expression=group_expression(r.class_name),
            kind="weak",
            expression_type="group",
            class_name=r.class_name,
            sample_id=self._sample_id(r),
            source="dubai",
        )


def _centred(start: int, size: int, side: int, extent: int) -> int:
    """First row (or column) of a `side` window centred on the chip at `start`, kept inside."""
    return int(min(max(start + (size - side) // 2, 0), extent - side))
