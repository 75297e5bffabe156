"""Real chips in every batch, their photometric augmentation, and the Dubai samples."""

from __future__ import annotations

import math
from pathlib import Path

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


@pytest.mark.real_data
def test_dubai_samples_are_group_samples_outside_the_hold_out(real_data: Path) -> None:
    from saymap.training.dubai import DubaiDataset
    from saymap.training.holdouts import DUBAI_HOLDOUT_TILE

    data = DubaiDataset(real_data / "dubai_landcover", chip_size=256)
    assert len(data) > 500
    assert not any(DUBAI_HOLDOUT_TILE in image.parts for image, _ in data.pairs)
    sample = data[0]
    assert sample.kind == "weak" and sample.expression_type == "group"
    assert sample.expression.startswith("all ") and sample.mask.sum() >= 64
    assert data.meta(0).sample_id == sample.sample_id


@pytest.mark.real_data
def test_hold_out_chips_may_validate_but_never_train(real_data: Path) -> None:
    import rasterio
    from pyproj import Transformer

    from saymap.training.data_sources import layer_datasets

    raster = real_data / "kampala" / "kampala_west_rgb.tif"
    with rasterio.open(raster) as src:  # the east quarter (the scorecard's strip) in lon/lat
        x0, y0 = src.xy(0, 1536, offset="ul")
        x1, y1 = src.xy(src.height, src.width, offset="ul")
        to_lonlat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
    (lon0, lon1), (lat1, lat0) = to_lonlat.transform([x0, x1], [y0, y1])
    spec = {
        "rasters": [str(raster)],
        "labels": str(real_data / "kampala" / "kampala_west_buildings.geojson"),
        "class_field": "class",
        "validation_area": {"bounds": [lon0, lat0, lon1, lat1], "crs": "EPSG:4326"},
    }
    train, val = layer_datasets(spec, 64)
    built = train.dataset
    assert built.held and val is not None and len(val)
    assert not set(train.indices) & built.held  # nothing of the strip is trained on
    assert set(val.indices) <= built.held  # the strip's chips do validate
    no_area = {k: v for k, v in spec.items() if k != "validation_area"}
    train_all, none = layer_datasets(no_area, 64)
    assert none is None and not set(train_all.indices) & train_all.dataset.held
