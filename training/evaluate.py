"""Score a model on a dataset the way the anchors do, at native size and at 480 px.

For each sample the image is resized to the model's input size (a multiple of 32), the
logits are brought back bilinearly, and a pixel is the target where the logit is > 0
(probability > 0.5, the anchors' argmax over two classes). "native" scores those
predictions against the ground truth at its own size; "480 px" resizes the logits
(bilinear) and the ground truth (nearest) to 480 x 480 first, as LAVT, RMSIN and BTDNet
evaluate. `open_eval_data` tells the kinds of `--data` apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from saymap.engine.errors import DatasetError
from saymap.training.batching import chipped
from saymap.training.metrics import ANCHOR_SIZE, MetricAccumulator, Metrics, resize_nearest
from saymap.training.samples import Sample, SampleDataset

log = logging.getLogger(__name__)

NATIVE = "native"
AT_480 = f"{ANCHOR_SIZE} px"


@dataclass
class EvalResult:
    results: dict[str, Metrics]  # NATIVE and AT_480
    by_type: dict[str, Metrics] = field(default_factory=dict)  # native, per expression type
    seconds: float = 0.0
    input_size: int | None = None


def _round32(n: int) -> int:
    return max(32, round(n / 32) * 32)


def _batches(dataset: SampleDataset, indices: list[int], batch_size: int):
    """Consecutive samples of one image size, up to batch_size at a time."""
    batch: list[Sample] = []
    for i in indices:
        s = dataset[i]
        if batch and (len(batch) == batch_size or s.image.shape != batch[0].image.shape):
            yield batch
            batch = []
        batch.append(s)
    if batch:
        yield batch


@torch.no_grad()
def predict_logits(model, samples: list[Sample], input_size: int | None) -> torch.Tensor:
    """(N, 1, H, W) logits at the samples' own size (all samples share one size)."""
    h, w = samples[0].image.shape[:2]
    size = (input_size, input_size) if input_size else (_round32(h), _round32(w))
    pixels = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2)
    pixels = pixels.to(model.device, torch.float32) / 255.0
    if pixels.shape[-2:] != size:
        pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
    text = model.encode_text([s.expression for s in samples])
    logits = model(pixels, text).logits.float()
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits


def evaluate(
    model,
    dataset: SampleDataset,
    *,
    input_size: int | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """oIoU, mIoU and Prec@X of `model` on `dataset` (the first `limit` samples, evenly)."""
    if input_size is not None and input_size % 32:
        raise DatasetError(f"input size must be a multiple of 32, got {input_size}")
    n = len(dataset)
    if n == 0:
        raise DatasetError("the evaluation data holds no samples")
    indices = list(range(n))
    if limit is not None and limit < n:
        indices = [int(k * n / limit) for k in range(limit)]
    native, at480 = MetricAccumulator(), MetricAccumulator()
    per_type: dict[str, MetricAccumulator] = {}
    started = time.perf_counter()
    done = 0
    for batch in _batches(dataset, indices, batch_size):
        logits = predict_logits(model, batch, input_size)
        big = F.interpolate(
            logits, size=(ANCHOR_SIZE, ANCHOR_SIZE), mode="bilinear", align_corners=False
        )
        preds = (logits[:, 0] > 0).cpu().numpy()
        preds480 = (big[:, 0] > 0).cpu().numpy()
        for s, pred, pred480 in zip(batch, preds, preds480, strict=True):
            native.update(pred, s.mask)
            at480.update(pred480, resize_nearest(s.mask, ANCHOR_SIZE))
            per_type.setdefault(s.expression_type, MetricAccumulator()).update(pred, s.mask)
        done += len(batch)
        if progress:
            progress(done, len(indices))
    return EvalResult(
        results={NATIVE: native.result(), AT_480: at480.result()},
        by_type={k: v.result() for k, v in sorted(per_type.items())},
        seconds=time.perf_counter() - started,
        input_size=input_size,
    )


@torch.no_grad()
def evaluate_by_kind(model, dataset: SampleDataset, size: int, batch: int = 8) -> dict[str, float]:
    """oIoU / mIoU / P@0.5 on all, full-only and weak-only samples at the chip size: the
    trainer's validation. Its forward is `predict_logits`, as `evaluate` (float32,
    logit > 0), so a chip folder of the same samples scores the same in `saymap eval`."""
    model.eval()
    groups = {"all": MetricAccumulator(), "full": MetricAccumulator(), "weak": MetricAccumulator()}
    for start in range(0, len(dataset), batch):
        stop = min(len(dataset), start + batch)
        samples = [chipped(dataset[i], size) for i in range(start, stop)]
        pred = (predict_logits(model, samples, None)[:, 0] > 0).cpu().numpy()
        for s, p in zip(samples, pred, strict=True):
            groups["all"].update(p, s.mask > 0)
            groups[s.kind].update(p, s.mask > 0)
    out: dict[str, float] = {}
    for name, acc in groups.items():
        result = acc.result()
        if result.n:
            out[f"{name}/oIoU"] = result.oiou
            out[f"{name}/mIoU"] = result.miou
            out[f"{name}/P@0.5"] = result.precision["0.5"]
    return out


def open_eval_data(
    data: str | Path,
    split: str = "test",
    *,
    labels: str | Path | None = None,
    class_field: str | None = None,
    class_name: str | None = None,
    label_crs: str | None = None,
    chip_size: int = 256,
) -> tuple[SampleDataset, str]:
    """A dataset from what `--data` names, and a word for what it was.

    A synthetic folder (manifest.json), a RefSegRS folder (output_phrase_*.txt), an
    RRSIS-D folder (refs(unc).p), a chip folder (samples.jsonl), or a raster with
    `labels` (a polygon layer; weak samples, one per feature).
    """
    path = Path(data)
    if path.is_file():
        if labels is None:
            raise DatasetError(f"{path} is a file: give its label layer with --labels")
        from saymap.training.datasets import LayerSource, build_layer_dataset

        ds = build_layer_dataset(
            [LayerSource(path)],
            labels,
            class_field=class_field,
            class_name=class_name,
            label_crs=label_crs,
            chip_size=chip_size,
        )
        return ds, "layer"
    if not path.is_dir():
        raise DatasetError(f"evaluation data not found: {path}")
    if (path / "manifest.json").is_file():
        from saymap.training.synthetic.store import load_synthetic

        return load_synthetic(path, split, kinds=("full",)), "synthetic"
    if (path / f"output_phrase_{split}.txt").is_file():
        from saymap.training.formats import load_refsegrs

        return load_refsegrs(path, split), "refsegrs"
    if (path / "refs(unc).p").is_file() or (path / "rrsisd" / "refs(unc).p").is_file():
        from saymap.training.formats import load_rrsisd

        return load_rrsisd(path, split), "rrsisd"
    if (path / "samples.jsonl").is_file():
        from saymap.training.chips import ChipFolderDataset

        return ChipFolderDataset(path), "chips"
    raise DatasetError(
        f"{path} is none of: a synthetic folder (manifest.json), RefSegRS "
        f"(output_phrase_{split}.txt), RRSIS-D (refs(unc).p), a chip folder (samples.jsonl)"
    )
