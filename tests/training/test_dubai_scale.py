"""Dubai chips under scale jitter: generated image/mask folders in dubai_landcover's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saymap.engine.class_names import group_expression
from saymap.training.dubai import CLASS_COLOURS, DubaiDataset

SIDE = 96


def _dubai_folder(root: Path) -> Path:
    """tile_1 with one 300 x 260 image: a water square (blue pixels) in a land field; the
    image shows the class colour, so a chip's pixels and mask can be compared."""
    image = np.full((260, 300, 3), 200, np.uint8)
    mask = np.full((260, 300, 3), (132, 41, 246), np.uint8)  # land
    image[100:180, 120:200] = (0, 0, 255)
    mask[100:180, 120:200] = CLASS_COLOURS["water"]
    (root / "tile_1" / "images").mkdir(parents=True)
    (root / "tile_1" / "masks").mkdir(parents=True)
    Image.fromarray(image).save(root / "tile_1" / "images" / "image_part_001.jpg", quality=98)
    Image.fromarray(mask).save(root / "tile_1" / "masks" / "image_part_001.png")
    return root


def _blue(image: np.ndarray) -> np.ndarray:
    return (image[..., 2] > 150) & (image[..., 0] < 100)


def test_without_jitter_a_chip_is_its_own_window(tmp_path: Path) -> None:
    data = DubaiDataset(_dubai_folder(tmp_path), chip_size=SIDE, classes=("water",))
    sample = data[0]
    assert sample.image.shape == (SIDE, SIDE, 3) and sample.mask.shape == (SIDE, SIDE)
    assert sample.expression == group_expression("water") and sample.mask.sum() >= 64


@pytest.mark.parametrize("draw", range(2))
def test_jittered_chips_keep_the_mask_on_the_pixels(tmp_path: Path, draw: int) -> None:
    """Zoomed in or out, the chip stays chip-sized, inside the image, and its mask still
    lies on the water's pixels (nearest-neighbour labels on the resampled image)."""
    data = DubaiDataset(
        _dubai_folder(tmp_path), chip_size=SIDE, classes=("water",), scale_jitter=1.0
    )
    sides = set()
    for index in range(len(data)):
        sample = data[index]
        assert sample.image.shape == (SIDE, SIDE, 3) and sample.mask.shape == (SIDE, SIDE)
        assert set(np.unique(sample.mask)) <= {0, 1}
        blue = _blue(sample.image)
        if sample.mask.sum():
            agree = (blue == sample.mask.astype(bool)).mean()
            assert agree > 0.95, agree
        sides.add(int(blue.sum()))
    assert len(sides) > 1  # the windows were not all the same size


def test_a_chip_is_read_zoomed_out_and_zoomed_in(tmp_path: Path) -> None:
    """Over many draws the same chip shows the lake smaller (a wider window: the shore
    around it) and larger (a narrower one) than at native scale."""
    folder = _dubai_folder(tmp_path)
    native = DubaiDataset(folder, chip_size=SIDE, classes=("water",))
    jittered = DubaiDataset(folder, chip_size=SIDE, classes=("water",), scale_jitter=1.0)
    for index in range(len(native)):
        share = native[index].mask.mean()
        draws = [jittered[index].mask.mean() for _ in range(40)]
        assert min(draws) < share < max(draws), (index, share, min(draws), max(draws))
