"""Metrics against values worked out by hand, including empty prediction and ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from saymap.training.metrics import (
    MetricAccumulator,
    compute_metrics,
    format_table,
    intersection_union,
    metrics_json,
    resize_nearest,
)


def m(rows: list[list[int]]) -> np.ndarray:
    return np.asarray(rows, np.uint8)


CASES = [
    # (prediction, ground truth, I, U, IoU)
    (m([[1, 1], [0, 0]]), m([[1, 0], [0, 0]]), 1, 2, 0.5),
    (m([[0, 0], [0, 0]]), m([[1, 1], [1, 0]]), 0, 3, 0.0),  # empty prediction
    (m([[1, 0], [0, 0]]), m([[0, 0], [0, 0]]), 0, 1, 0.0),  # empty ground truth
    (m([[0, 0], [0, 0]]), m([[0, 0], [0, 0]]), 0, 0, 0.0),  # both empty: 0, as the anchors
    (m([[1, 1], [1, 1]]), m([[1, 1], [1, 1]]), 4, 4, 1.0),
]


@pytest.mark.parametrize(("pred", "truth", "i", "u", "iou"), CASES)
def test_each_case(pred, truth, i, u, iou) -> None:
    assert intersection_union(pred, truth) == (i, u)
    acc = MetricAccumulator()
    assert acc.update(pred, truth) == iou


def test_set_metrics_by_hand() -> None:
    result = compute_metrics((p, t) for p, t, *_ in CASES)
    # cumulative I = 1 + 0 + 0 + 0 + 4 = 5, cumulative U = 2 + 3 + 1 + 0 + 4 = 10
    assert (result.cum_intersection, result.cum_union) == (5, 10)
    assert result.oiou == pytest.approx(0.5)
    assert result.miou == pytest.approx((0.5 + 0 + 0 + 0 + 1) / 5)
    assert result.precision == pytest.approx(
        {"0.5": 2 / 5, "0.6": 1 / 5, "0.7": 1 / 5, "0.8": 1 / 5, "0.9": 1 / 5}
    )
    assert result.n == 5


def test_iou_just_below_a_threshold_does_not_count() -> None:
    pred = np.zeros((1, 10), np.uint8)
    truth = np.zeros((1, 10), np.uint8)
    pred[0, :7] = 1
    truth[0, :10] = 1  # IoU 0.7 exactly counts for 0.7; 0.69... would not
    result = compute_metrics([(pred, truth)])
    assert result.precision["0.7"] == 1.0 and result.precision["0.8"] == 0.0
    pred[0, 6] = 0
    assert compute_metrics([(pred, truth)]).precision["0.7"] == 0.0


def test_empty_set_and_shape_mismatch() -> None:
    assert compute_metrics([]).oiou == 0.0
    with pytest.raises(ValueError, match="differ"):
        intersection_union(np.zeros((2, 2)), np.zeros((3, 3)))


def test_resize_nearest() -> None:
    small = m([[1, 0], [0, 1]])
    assert resize_nearest(small, 4).tolist() == [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 1, 1],
        [0, 0, 1, 1],
    ]
    big = np.zeros((800, 800), np.uint8)
    big[:400] = 1
    assert resize_nearest(big).shape == (480, 480) and resize_nearest(big)[:240].all()
    assert not resize_nearest(big)[240:].any()


def test_table_and_json() -> None:
    result = compute_metrics((p, t) for p, t, *_ in CASES)
    table = format_table({"native": result, "480 px": result})
    lines = table.splitlines()
    assert "oIoU" in lines[0] and "P@0.9" in lines[0]
    assert lines[2].split()[:4] == ["native", "5", "50.00", "30.00"]
    assert lines[3].startswith("480 px")
    data = json.loads(metrics_json({"native": result}, split="test"))
    assert data["results"]["native"]["oiou"] == 0.5 and data["split"] == "test"
