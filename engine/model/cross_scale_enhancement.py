"""Deep, language-aware features re-weight shallow ones: RRSIS's LGCE (RMSIN's cross-scale idea)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossScaleEnhancement(nn.Module):
    """For each shallow stage, a spatial map from the upsampled deep feature (modulated by the
    sentence) and a channel weight from the sentence re-weight the shallow feature, so small,
    scattered targets that the deep stage found survive into the high-resolution maps."""

    def __init__(self, shallow_dims: list[int], deep_dim: int, text_dim: int) -> None:
        super().__init__()
        self.deep_proj = nn.Conv2d(deep_dim, deep_dim // 2, 1)
        self.sentence_proj = nn.Linear(text_dim, deep_dim // 2)
        self.spatial = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(deep_dim // 2 + dim, dim, 3, padding=1),
                nn.GroupNorm(_groups(dim), dim),
                nn.GELU(),
                nn.Conv2d(dim, 1, 1),
            )
            for dim in shallow_dims
        )
        self.channel = nn.ModuleList(nn.Linear(text_dim, dim) for dim in shallow_dims)
        self.gamma = nn.Parameter(torch.zeros(len(shallow_dims)))  # starts as identity

    def forward(
        self, shallow: list[torch.Tensor], deep: torch.Tensor, sentence: torch.Tensor
    ) -> list[torch.Tensor]:
        """shallow: [(N, C_i, H_i, W_i)]; deep: (N, C_d, H_d, W_d); sentence: (N, D_text)."""
        guide = self.deep_proj(deep) * self.sentence_proj(sentence)[:, :, None, None]
        enhanced = []
        for i, x in enumerate(shallow):
            g = F.interpolate(guide, size=x.shape[-2:], mode="bilinear", align_corners=False)
            spatial = torch.sigmoid(self.spatial[i](torch.cat([g, x], dim=1)))  # (N, 1, H, W)
            channel = torch.sigmoid(self.channel[i](sentence))[:, :, None, None]  # (N, C, 1, 1)
            enhanced.append(x + self.gamma[i] * x * spatial * channel)
        return enhanced


def _groups(dim: int) -> int:
    return next(g for g in (8, 4, 2, 1) if dim % g == 0)
