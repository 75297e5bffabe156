"""Real chips in every batch, their photometric augmentation, and the Dubai samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saymap.training.augment import PhotometricAugment
from saymap.training.wrel import Pools, draw_mixed_batch


def _pools() -> tuple[Pools, frozenset[int]]:
    # 0-99 synthetic (full 0-59, weak 60-99); 100-109 real (full 100-104, weak 105-109)
    full = [*range(60), *range(100, 105)]
    weak = [*range(60, 100), *range(105, 110)]
    return Pools(full, weak, ["building"], [0] * len(weak)), frozenset(range(100, 110))


@pytest.mark.parametrize("share", [0.5, 0.75])
def test_every_batch_is_at_least_the_real_share(share: float) -> None:
    pools, real = _pools()
    for step in range(200):
        picks = draw_mixed_batch(pools, real, share, 8, None, 0, 0, step)
        assert len(picks) == 8
        indices = [pools.weak[j] if weak else j for j, weak in picks]
        assert sum(i in real for i in indices) >= math.ceil(8 * share)
    again = draw_mixed_batch(pools, real, share, 8, None, 0, 0, 5)
    assert again == draw_mixed_batch(pools, real, share, 8, None, 0, 0, 5)  # resumable


def test_a_side_with_nothing_gives_its_places_to_the_other() -> None:
    _, real = _pools()
    only_full_synthetic = Pools(list(range(60)), [], ["building"], [])
    picks = draw_mixed_batch(only_full_synthetic, real, 0.5, 8, None, 0, 0, 0)
    assert len(picks) == 8 and all(not weak and j < 60 for j, weak in picks)


def test_photometric_augmentation_changes_colours_not_geometry() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = (200, 80, 40)  # a red roof on black
    out = PhotometricAugment(blur_p=0.0, jpeg_p=0.0)(image, rng)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)
    roof = out[16:48, 16:48].astype(int).sum(-1)
    assert roof.min() > out[:8, :8].astype(int).sum(-1).max()  # the roof stays where it was
    again = PhotometricAugment(blur_p=0.0, jpeg_p=0.0)(image, np.random.default_rng(0))
    assert np.array_equal(out, again)
