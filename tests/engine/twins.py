"""One check, two rasters: a generated look-alike and the real sample it stands in for.

A twin test takes a fixture parametrised over SIDES and built with `side_of`: its
[generated] side writes look-alikes (tests/engine/generated.py) into a fresh folder and
runs everywhere; its [real] side reads ../shared/data/real, is marked real_data and skips,
with the reason, where that folder is absent. So each check is written once and still
runs in a clone without ../shared (`-m "not real_data"` runs the generated side alone).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

GENERATED = "generated"
REAL = "real"
SIDES = [GENERATED, pytest.param(REAL, marks=pytest.mark.real_data)]


def real_case(*values: object, id: str) -> object:
    """A parameter set of a [real] case: marked real_data, named `real-<id>`."""
    return pytest.param(*values, id=f"{REAL}-{id}", marks=pytest.mark.real_data)


def side_of(
    request: pytest.FixtureRequest,
    generated: Callable[[Path], T],
    real: Callable[[Path], T],
) -> T:
    """`real(../shared/data/real)` on the real side (skipping where it is absent), else
    `generated(a fresh folder)`: the look-alikes live outside the test's tmp_path, so
    checks of what a run leaves in its folder hold on both sides."""
    if request.param == REAL:
        return real(request.getfixturevalue("real_data"))
    return generated(request.getfixturevalue("tmp_path_factory").mktemp(GENERATED))
