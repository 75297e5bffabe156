"""Turning samples into tensors and chips, and cached text features, for the trainer."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from saymap.engine.model import SaymapModel
from saymap.engine.model.outputs import TextFeatures
from saymap.engine.model.reference_bank import ReferenceBank
from saymap.training.samples import Sample


def chip(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crop or zero-pad to size x size (no flips: 'left of' must stay left)."""
    image, mask = sample.image, sample.mask
    h, w = mask.shape
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    image, mask = (
        image[top : top + size, left : left + size],
        mask[top : top + size, left : left + size],
    )
    out_img = np.zeros((size, size, 3), np.uint8)
    out_mask = np.zeros((size, size), np.uint8)
    out_img[: image.shape[0], : image.shape[1]] = image
    out_mask[: mask.shape[0], : mask.shape[1]] = mask
    return out_img, out_mask


def to_tensors(
    samples: list[Sample], size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    chips = [chip(s, size) for s in samples]
    pixels = torch.from_numpy(np.stack([c[0] for c in chips])).permute(
        0, 3, 1, 2
    )  # (N,H,W,3)->(N,3,H,W)
    masks = torch.from_numpy(np.stack([c[1] for c in chips]))[:, None]
    return pixels.to(device).float().div_(255.0), masks.to(device).float()


class TextCache:
    """Features of a frozen text encoder per expression, so CPU training pays once per string."""

    def __init__(self, model: SaymapModel) -> None:
        self.model = model
        self.store: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, expressions: list[str]) -> TextFeatures:
        if not self.model.config.freeze_text_encoder:
            tokens = self.model.text_encoder.tokenize(expressions)
            dev = self.model.device
            return self.model.text_encoder(
                tokens["input_ids"].to(dev), tokens["attention_mask"].to(dev)
            )
        missing = sorted({e for e in expressions if e not in self.store})
        for start in range(0, len(missing), 64):
            part = missing[start : start + 64]
            feats = self.model.encode_text(part)
            for k, e in enumerate(part):
                self.store[e] = (feats.embeddings[k].detach(), feats.mask[k])
        return TextFeatures(
            torch.stack([self.store[e][0] for e in expressions]),
            torch.stack([self.store[e][1] for e in expressions]),
        )


def banked_text(
    model: SaymapModel, names: list[str], bank: ReferenceBank, index: torch.Tensor
) -> TextFeatures:
    """Class names with bank entries written into their padding; gradients reach the bank."""
    tokens = model.text_encoder.tokenize(names)
    ids, mask = tokens["input_ids"].to(model.device), tokens["attention_mask"].to(model.device)
    embeds, full_mask = bank.write(model.text_encoder.word_embeddings(ids), mask, index)
    return model.text_encoder(ids, full_mask, inputs_embeds=embeds)


def chipped(sample: Sample, size: int) -> Sample:
    """The sample centre-cropped or zero-padded to size x size."""
    if sample.mask.shape == (size, size):
        return sample
    image, mask = chip(sample, size)
    return dataclasses.replace(sample, image=image, mask=mask)


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)
