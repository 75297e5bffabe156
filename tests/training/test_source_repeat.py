"""data.source_repeat: a small real source drawn as often as the recipe asks."""

from __future__ import annotations

import dataclasses

import pytest

from saymap.training.recipe import RecipeError, recipe_from_dict
from saymap.training.samples import SampleList
from saymap.training.wrel import draw_mixed_batch, split_pools
from tests.training.painted import painted_samples


def test_repeated_source_fills_its_share_of_the_draws() -> None:
    small = [dataclasses.replace(s, source="layer") for s in painted_samples(2)]
    large = [dataclasses.replace(s, source="dubai") for s in painted_samples(20, seed=1)]
    data = SampleList(small + large)
    n_small = len(small)
    plain = split_pools(data, 1.0, seed=0)
    repeated = split_pools(data, 1.0, seed=0, source_repeat={"layer": 10})
    assert len(repeated.weak) - len(plain.weak) == 9 * sum(s.kind == "weak" for s in small)
    assert len(repeated.full) - len(plain.full) == 9 * sum(s.kind == "full" for s in small)
    assert repeated.real == plain.real  # the same samples, only drawn more often

    def small_share(pools) -> float:
        hits = total = 0
        for step in range(200):
            for j, weak in draw_mixed_batch(pools, pools.real, 1.0, 8, None, 0, 1, step):
                index = pools.weak[j] if weak else j
                hits += index < n_small
                total += 1
        return hits / total

    # 2 of 22 sources' samples are "layer": ~9 % plain, ~50 % repeated ten times.
    assert small_share(plain) < 0.2
    assert 0.35 < small_share(repeated) < 0.65


def test_bad_repeat_is_refused() -> None:
    with pytest.raises(RecipeError, match="source_repeat"):
        recipe_from_dict({"data": {"source_repeat": {"layer": 0}}})


def test_source_and_class_key_repeats_one_class_only() -> None:
    samples = [dataclasses.replace(s, source="dubai") for s in painted_samples(12, seed=2)]
    data = SampleList(samples)
    weak = [s for s in samples if s.kind == "weak"]
    target = weak[0].class_name
    plain = split_pools(data, 1.0, seed=0, source_repeat={"dubai": 2})
    by_class = split_pools(data, 1.0, seed=0, source_repeat={"dubai": 2, f"dubai/{target}": 5})
    n_target = sum(s.class_name == target for s in weak)
    assert len(by_class.weak) - len(plain.weak) == 3 * n_target
    names = [by_class.classes[k] for k in by_class.weak_class]
    assert names.count(target) == 5 * n_target
    assert len(names) - names.count(target) == 2 * (len(weak) - n_target)
