"""Shared fixtures: the real rasters beside the project, temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# SAYMAP_SHARED=/nonexistent runs the tests as a fresh clone without ../shared beside it.
SHARED = Path(os.environ.get("SAYMAP_SHARED") or ROOT.parent / "shared")
REAL_DATA = SHARED / "data" / "real"


def skip_module_without_real_data(layer: str) -> None:
    """Skip the calling module once, with one reason, where ../shared is absent: `layer`
    names the real-data layer whose generated twin runs everywhere."""
    if not REAL_DATA.is_dir():
        where = f"real samples not found at {REAL_DATA} (../shared is beside CI's clone only)"
        pytest.skip(f"{layer}: {where}", allow_module_level=True)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real georeferenced samples; tests using it skip where it is absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real samples not found at {REAL_DATA} (../shared is beside CI's clone only)")
    return REAL_DATA
