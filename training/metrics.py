"""Referring-segmentation metrics as the anchors (LAVT, RMSIN, BTDNet) compute them.

- oIoU: cumulative intersection over cumulative union across the whole set;
- mIoU: mean of per-sample IoU, where a sample whose union is empty counts as 0;
- Prec@X: share of samples whose IoU is at least X, for X in 0.5 ... 0.9.

Pure numpy on binary masks; resizing logits belongs to the evaluator.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
ANCHOR_SIZE = 480  # the anchors resize image and ground truth to 480 x 480 and score there


def intersection_union(pred: np.ndarray, target: np.ndarray) -> tuple[int, int]:
    """Pixel counts of pred AND target and pred OR target (both read as > 0)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {target.shape} differ")
    p = pred > 0
    t = target > 0
    return int(np.count_nonzero(p & t)), int(np.count_nonzero(p | t))


def sample_iou(intersection: int, union: int) -> float:
    """IoU of one sample; an empty union is 0, as in the anchors' code (not 1)."""
    return intersection / union if union > 0 else 0.0


@dataclass
class Metrics:
    n: int
    oiou: float
    miou: float
    precision: dict[str, float] = field(default_factory=dict)  # "0.5" -> share
    cum_intersection: int = 0
    cum_union: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class MetricAccumulator:
    """Adds samples one at a time so an evaluation never holds all masks in memory."""

    def __init__(self, thresholds: Iterable[float] = THRESHOLDS) -> None:
        self.thresholds = tuple(thresholds)
        self.cum_i = 0
        self.cum_u = 0
        self.ious: list[float] = []

    def update(self, pred: np.ndarray, target: np.ndarray) -> float:
        """Score one sample; returns its IoU."""
        i, u = intersection_union(pred, target)
        self.cum_i += i
        self.cum_u += u
        iou = sample_iou(i, u)
        self.ious.append(iou)
        return iou

    def result(self) -> Metrics:
        ious = np.asarray(self.ious, dtype=np.float64)
        n = len(ious)
        precision = {
            f"{t:.1f}": float(np.count_nonzero(ious >= t) / n) if n else 0.0
            for t in self.thresholds
        }
        return Metrics(
            n=n,
            oiou=self.cum_i / self.cum_u if self.cum_u > 0 else 0.0,
            miou=float(ious.mean()) if n else 0.0,
            precision=precision,
            cum_intersection=self.cum_i,
            cum_union=self.cum_u,
        )


def compute_metrics(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Metrics:
    """Metrics over (prediction, ground truth) binary mask pairs."""
    acc = MetricAccumulator()
    for pred, target in pairs:
        acc.update(pred, target)
    return acc.result()


def resize_nearest(mask: np.ndarray, size: int = ANCHOR_SIZE) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D mask to size x size (the anchors' ground truth)."""
    h, w = mask.shape
    rows = np.minimum((np.arange(size) + 0.5) * h / size, h - 1).astype(np.intp)
    cols = np.minimum((np.arange(size) + 0.5) * w / size, w - 1).astype(np.intp)
    return mask[rows[:, None], cols[None, :]]


def format_table(results: dict[str, Metrics]) -> str:
    """A plain-text table, one row per resolution ("native", "480 px"), percentages."""
    ths = next(iter(results.values())).precision.keys() if results else []
    head = ["scored at", "n", "oIoU", "mIoU", *[f"P@{t}" for t in ths]]
    rows = [head]
    for name, m in results.items():
        rows.append(
            [
                name,
                str(m.n),
                f"{100 * m.oiou:.2f}",
                f"{100 * m.miou:.2f}",
                *[f"{100 * v:.2f}" for v in m.precision.values()],
            ]
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    lines = [
        "  ".join(
            cell.ljust(w) if c == 0 else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def metrics_json(results: dict[str, Metrics], **extra: object) -> str:
    """The JSON `saymap eval` writes: one object per resolution plus run details."""
    return json.dumps({"results": {k: v.to_dict() for k, v in results.items()}, **extra}, indent=2)
