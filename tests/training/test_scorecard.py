"""The real-imagery scorecard: pixel counts, pooling, the fixed hold-outs (its run on Kampala's
hold-out strip, which needs the real samples, is in test_real_data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from saymap.training.holdouts import (
    holdout_window,
    is_holdout_raster,
)
from saymap.training.scorecard import (
    Counts,
    Row,
    pooled,
    replace_section,
)


def test_counts_give_iou_precision_recall() -> None:
    pred = np.array([[1, 1, 0, 0]], bool)
    truth = np.array([[1, 0, 1, 0]], bool)
    c = Counts()
    c.add(pred, truth)
    assert (c.tp, c.fp, c.fn) == (1, 1, 1)
    assert c.iou == pytest.approx(1 / 3) and c.precision == 0.5 and c.recall == 0.5
    ignored = Counts()
    ignored.add(pred, truth, scored=np.array([[1, 0, 1, 1]], bool))  # the fp pixel is unlabelled
    assert (ignored.tp, ignored.fp, ignored.fn) == (1, 0, 1)


def test_pooling_adds_pixels_not_ious() -> None:
    rows = [
        Row("s", "a", "building", Counts(90, 10, 0), 3, 1.0),
        Row("s", "b", "building", Counts(0, 0, 100), 1, 2.0),
    ]
    [row] = pooled(rows)
    assert row.counts.iou == pytest.approx(90 / 200)  # not the mean of 0.9 and 0.0
    assert row.polygons == 4 and row.seconds == 3.0


def test_the_hold_out_is_the_east_quarter() -> None:
    window = holdout_window(2048, 1000)
    assert (window.col_off, window.width, window.row_off, window.height) == (1536, 512, 0, 1000)
    assert is_holdout_raster("/anywhere/hot_zanzibar/zanzibar_north_rgb.tif")
    assert not is_holdout_raster("/anywhere/mine/zanzibar_north_rgb.tif")


def test_replace_section_keeps_the_rest() -> None:
    text = "# B\n\n## A\nold a\n\n## Real imagery\nold\n\n## C\nc\n"
    new = replace_section(text, "## Real imagery\nnew\n")
    assert new == "# B\n\n## A\nold a\n\n## Real imagery\nnew\n\n## C\nc\n"
    assert replace_section("# B\n", "## Real imagery\nx\n").endswith("## Real imagery\nx\n")
