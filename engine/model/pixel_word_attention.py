"""Pixel-word attention with a language gate: LAVT's PWAM + LG, used after every stage."""

from __future__ import annotations

import torch
from torch import nn


class PixelWordAttention(nn.Module):
    """Each pixel gathers the words it attends to; the result multiplies the visual feature
    (LAVT's PWM) and returns to the stage through a tanh language gate (LAVT's LG)."""

    def __init__(self, dim: int, text_dim: int, heads: int) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(dim)
        self.word_proj = nn.Linear(text_dim, dim)
        self.attention = nn.MultiheadAttention(dim, _fit_heads(dim, heads), batch_first=True)
        self.visual_proj = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.GELU())
        self.fused_proj = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.GELU())
        self.gate = nn.Sequential(
            nn.Linear(dim, dim, bias=False), nn.ReLU(), nn.Linear(dim, dim, bias=False), nn.Tanh()
        )

    def forward(
        self, x: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor
    ) -> torch.Tensor:
        """x: (N, C, H, W); words: (N, L, D_text); word_mask: (N, L) True on real tokens."""
        n, c, h, w = x.shape
        queries = self.query_norm(x.flatten(2).transpose(1, 2))  # (N, HW, C)
        keys = self.word_proj(words)  # (N, L, C)
        language, _ = self.attention(
            queries, keys, keys, key_padding_mask=~word_mask, need_weights=False
        )
        language = language.transpose(1, 2).reshape(n, c, h, w)  # (N, HW, C) -> (N, C, H, W)
        fused = self.fused_proj(self.visual_proj(x) * language)
        gate = self.gate(fused.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + gate * fused


def _fit_heads(dim: int, heads: int) -> int:
    """The largest head count <= heads that divides dim."""
    return max(h for h in range(1, heads + 1) if dim % h == 0)
