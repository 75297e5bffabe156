"""Small painted scenes for trainer tests: a red square and a blue disc on grey noise."""

from __future__ import annotations

import numpy as np

from saymap.training.samples import Sample, SampleList


def painted_samples(n: int, size: int = 64, seed: int = 0) -> SampleList:
    rng = np.random.default_rng(seed)
    samples = []
    yy, xx = np.mgrid[:size, :size]
    for k in range(n):
        image = rng.integers(90, 140, (size, size, 3), dtype=np.uint8)
        sq = rng.integers(4, size - 20, 2)
        square = np.zeros((size, size), np.uint8)
        square[sq[0] : sq[0] + 16, sq[1] : sq[1] + 16] = 1
        c = rng.integers(10, size - 10, 2)
        disc = (((yy - c[0]) ** 2 + (xx - c[1]) ** 2) < 64).astype(np.uint8) * (1 - square)
        image[square > 0] = (200, 40, 40)
        image[disc > 0] = (40, 60, 200)
        for name, mask, sentence in (
            ("square", square, "the red square"),
            ("disc", disc, "the round blue disc"),
        ):
            weak = Sample(image, mask, name, "weak", "class", name, f"{k}-{name}-w", "test")
            samples.append(weak)
            samples.append(
                Sample(image, mask, sentence, "full", "attribute", name, f"{k}-{name}-f", "test")
            )
    return SampleList(samples)
