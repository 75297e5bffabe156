"""Target and background decoded apart and combined: BTDNet's target-background twin decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from saymap.engine.model.cross_scale_enhancement import _groups


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.GroupNorm(_groups(c_out), c_out),
        nn.GELU(),
    )


class TwinDecoder(nn.Module):
    """A top-down pyramid to stride 4, conditioned on the sentence (FiLM), then two heads:
    one for the referred target, one for everything that is not it. The final logit is
    target minus background, so each head's evidence counts (T-BTD)."""

    def __init__(self, in_dims: list[int], text_dim: int, dim: int, twin: bool = True) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_dims)
        self.smooth = nn.ModuleList(_conv_block(dim, dim) for _ in in_dims[:-1])
        self.film = nn.Linear(text_dim, 2 * dim)
        self.target_head = nn.Sequential(_conv_block(dim, dim), nn.Conv2d(dim, 1, 1))
        self.background_head = (
            nn.Sequential(_conv_block(dim, dim), nn.Conv2d(dim, 1, 1)) if twin else None
        )

    def forward(
        self, features: list[torch.Tensor], sentence: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """features: 4 maps at strides 4..32; sentence: (N, D_text) -> logits at stride 4."""
        x = self.lateral[-1](features[-1])
        for i in range(len(features) - 2, -1, -1):
            skip = self.lateral[i](features[i])
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.smooth[i](x + skip)
        scale, shift = self.film(sentence).chunk(2, dim=-1)
        x = x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        target = self.target_head(x)
        background = self.background_head(x) if self.background_head is not None else None
        return target, background
