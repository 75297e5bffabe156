"""WREL's data side and LRB-WREL's teacher: which samples are weak or full, how batches mix
them, and the EMA teacher's momentum schedule ("Understanding What Is Not Said", 2025)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from saymap.training.samples import SampleDataset, sample_meta


@dataclass(frozen=True)
class Pools:
    """Indices into the training set: `full` keep their sentence, `weak` are class names."""

    full: list[int]
    weak: list[int]
    classes: list[str]  # sorted class names of the weak samples (class-level bank order)
    weak_class: list[int]  # class index of each weak sample, aligned with `weak`
    real: frozenset[int] = frozenset()  # dataset indices of real (not synthetic) samples


def _keep_full(sample_id: str, ratio: float, seed: int) -> bool:
    """Deterministic per sample and seed, independent of dataset order."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < ratio


def split_pools(
    dataset: SampleDataset,
    full_ratio: float,
    seed: int,
    source_repeat: Mapping[str, int] | None = None,
) -> Pools:
    """Keep `full_ratio` of the full expressions (the WREL setting); every weak one stays.
    A sample enters its pool `source_repeat["source/class"]` times (e.g. "dubai/water"), else
    `source_repeat["source"]` times, else once."""
    full, weak, weak_names, real = [], [], [], []
    for i in range(len(dataset)):
        sample = sample_meta(dataset, i)  # no pixels read
        repeat = source_repeat or {}
        times = repeat.get(f"{sample.source}/{sample.class_name}", repeat.get(sample.source, 1))
        if sample.source != "synthetic":
            real.append(i)
        if sample.kind == "full":
            if full_ratio >= 1.0 or _keep_full(sample.sample_id, full_ratio, seed):
                full += [i] * times
        else:
            weak += [i] * times
            weak_names += [sample.class_name] * times
    classes = sorted(set(weak_names))
    index = {c: k for k, c in enumerate(classes)}
    return Pools(full, weak, classes, [index[c] for c in weak_names], frozenset(real))


def draw_batch(
    pools: Pools,
    batch: int,
    full_share: float | None,
    seed: int,
    stage: int,
    step: int,
    rank: int = 0,
) -> list[tuple[int, bool]]:
    """(dataset index, is_weak) pairs for one step; a pure function of its arguments, so a
    resumed run draws exactly the batches the killed one would have (each rank its own)."""
    rng = np.random.default_rng([seed, stage, step, rank] if rank else [seed, stage, step])
    if not pools.weak:
        full_share = 1.0
    elif not pools.full:
        full_share = 0.0
    elif full_share is None:
        full_share = len(pools.full) / (len(pools.full) + len(pools.weak))
    n_full = (
        int(rng.binomial(batch, full_share)) if 0 < full_share < 1 else round(batch * full_share)
    )
    picks = (
        [(int(pools.full[j]), False) for j in rng.integers(0, len(pools.full), n_full)]
        if n_full
        else []
    )
    n_weak = batch - n_full
    if n_weak:
        picks += [(int(j), True) for j in rng.integers(0, len(pools.weak), n_weak)]
    return picks  # weak entries hold the position in pools.weak, not the dataset index


def draw_mixed_batch(
    pools: Pools,
    real: frozenset[int],
    real_share: float,
    batch: int,
    full_share: float | None,
    seed: int,
    stage: int,
    step: int,
    rank: int = 0,
) -> list[tuple[int, bool]]:
    """Like draw_batch, but at least `real_share` of the batch comes from real samples (the
    rest from synthetic ones), so real imagery never drowns in the larger synthetic set.
    A side with no sample in this stage's pools gives its places to the other."""
    sides = []
    for is_real in (True, False):
        full = [i for i in pools.full if (i in real) == is_real]
        positions = [j for j, i in enumerate(pools.weak) if (i in real) == is_real]
        sub = Pools(
            full,
            [pools.weak[j] for j in positions],
            pools.classes,
            [pools.weak_class[j] for j in positions] if pools.weak_class else [],
        )
        sides.append((sub, positions))
    n_real = int(np.ceil(batch * real_share))
    counts = [n_real, batch - n_real]
    for k in (0, 1):
        if not sides[k][0].full and not sides[k][0].weak:
            counts[1 - k] += counts[k]
            counts[k] = 0
    picks: list[tuple[int, bool]] = []
    for part, ((sub, positions), n) in enumerate(zip(sides, counts, strict=True)):
        if n == 0:
            continue
        drawn = draw_batch(sub, n, full_share, seed, 1000 * (part + 1) + stage, step, rank)
        picks += [(positions[j], True) if weak else (j, False) for j, weak in drawn]
    return picks


def ema_momentum(epoch: float) -> float:
    """0.95 -> 0.99 over the first epoch, -> 0.999 by the third, then 0.9995 (published code)."""
    if epoch < 1.0:
        return 0.95 + 0.04 * epoch
    if epoch < 3.0:
        return 0.99 + 0.009 * (epoch - 1.0) / 2.0
    return 0.9995


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        if s.requires_grad:
            t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)
