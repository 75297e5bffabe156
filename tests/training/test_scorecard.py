"""The real-imagery scorecard: pixel counts, pooling, the fixed hold-outs, and a real run of
the whole pipeline on one hold-out strip (the brightness segmenter stands in for a model:
what is checked is what gets scored and where, not how good a model is)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from saymap.training.holdouts import (
    DUBAI_HOLDOUT_TILE,
    dubai_images,
    holdout_window,
    is_holdout_raster,
)
from saymap.training.scorecard import (
    Counts,
    Row,
    ScorecardSettings,
    markdown_table,
    pooled,
    replace_section,
    run_scorecard,
)
from tests.engine.brightness import BrightnessSegmenter


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


@pytest.mark.real_data
def test_dubai_hold_out_tile_is_never_a_training_image(real_data: Path) -> None:
    train = dubai_images(real_data / "dubai_landcover", holdout=False)
    held = dubai_images(real_data / "dubai_landcover", holdout=True)
    assert held and train
    assert all(DUBAI_HOLDOUT_TILE in p.parts for p, _ in held)
    assert not any(DUBAI_HOLDOUT_TILE in p.parts for p, _ in train)


@pytest.mark.real_data
def test_scorecard_runs_the_pipeline_on_the_strip(real_data: Path) -> None:
    model = BrightnessSegmenter()
    model.card = {"gsd_m": 0.3}
    card = run_scorecard(model, real_data, ScorecardSettings(device="cpu"), ["kampala"])
    [row] = card["sources"]
    [block] = card["blocks"]
    assert (row["source"], row["class"], block["block"]) == (
        "kampala",
        "building",
        "kampala_west_rgb",
    )
    # every scored pixel lies in the 512-column strip of the 2048 x 2048 raster
    assert row["tp"] + row["fp"] + row["fn"] <= 512 * 2048
    assert row["tp"] + row["fn"] > 0  # the strip has labelled buildings
    assert card["pooled_orthophoto_building_iou"] == pytest.approx(row["iou"], abs=1e-4)
    assert "| kampala | all | building |" in markdown_table(card)
