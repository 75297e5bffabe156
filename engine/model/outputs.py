"""Typed inputs and outputs of the model, with their shapes and strides spelled out."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TextFeatures:
    """An encoded prompt batch: computed once per request and reused for every tile.

    embeddings: (P, L, D_text) last hidden states of the text encoder, L = max_tokens.
    mask: (P, L) bool, True on real tokens (padding False).
    P is 1 (broadcast over the tile batch) or equal to the tile batch.
    """

    embeddings: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> TextFeatures:
        return TextFeatures(self.embeddings.to(device), self.mask.to(device))

    def expand(self, batch: int) -> TextFeatures:
        if self.embeddings.shape[0] == batch:
            return self
        if self.embeddings.shape[0] != 1:
            raise ValueError(
                f"text batch {self.embeddings.shape[0]} cannot be broadcast to {batch} tiles"
            )
        return TextFeatures(self.embeddings.expand(batch, -1, -1), self.mask.expand(batch, -1))


@dataclass
class SegmentationOutput:
    """logits: (B, 1, H, W) at the input resolution: target-vs-rest, before the sigmoid.

    target_logits / background_logits: (B, 1, H/4, W/4), the twin decoder's two heads
    (stride 4); background_logits is None when the twin decoder is switched off.
    """

    logits: torch.Tensor
    target_logits: torch.Tensor
    background_logits: torch.Tensor | None = None
    # Only with output_features=True (training objectives such as D-MOLS read them):
    features: list[torch.Tensor] | None = None  # 4 language-aware maps, strides 4..32
    words: torch.Tensor | None = None  # (B, L, D_text) after the last alignment
