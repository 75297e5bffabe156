"""A deterministic segmenter: the target is wherever pixels are bright.

It is a real `torch.nn.Module` that satisfies the pipeline's `Segmenter` protocol, so tests
and the memory benchmark can run the whole pipeline (read, tile, batch, blend, write,
vectorise) with a known answer: paint a region bright and its polygon must come back at
the right map coordinates. It stands in for the RRSIS model only where the model's own
output is not what is being checked; it understands no language.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from saymap.engine.model.outputs import SegmentationOutput, TextFeatures


@dataclass
class BrightnessConfig:
    name: str = "brightness"
    tile_size: int = 256
    max_tokens: int = 20
    level: float = 0.8  # mean RGB in [0, 1] above which a pixel is the target
    sharpness: float = 40.0  # logit per unit of brightness above the level

    @property
    def stride(self) -> int:
        return 32


class BrightnessSegmenter(nn.Module):
    """logits = sharpness · (mean RGB − level): positive exactly where the mean is above it."""

    def __init__(self, config: BrightnessConfig | None = None) -> None:
        super().__init__()
        self.config = config or BrightnessConfig()
        self.register_buffer("anchor", torch.zeros(1))  # gives the module a device
        self.encoded: list[list[str]] = []  # every encode_text call, to check "once per prompt"

    def encode_text(self, prompts: list[str]) -> TextFeatures:
        self.encoded.append(list(prompts))
        length = self.config.max_tokens
        embeddings = torch.zeros(len(prompts), length, 8, device=self.anchor.device)
        mask = torch.ones(len(prompts), length, dtype=torch.bool, device=self.anchor.device)
        return TextFeatures(embeddings, mask)

    def count_tokens(self, prompt: str) -> int:
        return len(prompt.split()) + 2  # [CLS] and [SEP], as a BERT tokenizer counts

    def forward(self, pixel_values: torch.Tensor, text: TextFeatures) -> SegmentationOutput:
        text.expand(pixel_values.shape[0])  # same broadcast rule as the real model
        brightness = pixel_values.mean(dim=1, keepdim=True)  # (B, 3, H, W) -> (B, 1, H, W)
        logits = (brightness - self.config.level) * self.config.sharpness
        return SegmentationOutput(logits=logits, target_logits=logits[..., ::4, ::4])


class RecordingSegmenter(BrightnessSegmenter):
    """The brightness segmenter, also noting the batch shape of every forward pass."""

    def __init__(self, config: BrightnessConfig | None = None) -> None:
        super().__init__(config or BrightnessConfig(tile_size=128))
        self.batches: list[tuple[int, ...]] = []

    def forward(self, pixel_values: torch.Tensor, text: TextFeatures) -> SegmentationOutput:
        self.batches.append(tuple(pixel_values.shape))
        return super().forward(pixel_values, text)
