"""Words attend back to pixels in the deeper stages: BTDNet's bidirectional alignment (BSC)."""

from __future__ import annotations

import torch
from torch import nn

from saymap.engine.model.pixel_word_attention import _fit_heads


class BidirectionalAlignment(nn.Module):
    """Updates the word features with what the pixels of this stage say about them, so the
    next stage's pixel-word attention sees words grounded in this image."""

    def __init__(self, dim: int, text_dim: int, heads: int) -> None:
        super().__init__()
        self.word_norm = nn.LayerNorm(text_dim)
        self.query_proj = nn.Linear(text_dim, dim)
        self.pixel_norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, _fit_heads(dim, heads), batch_first=True)
        self.back_proj = nn.Linear(dim, text_dim)
        self.alpha = nn.Parameter(torch.zeros(1))  # starts as identity; tanh-gated residual

    def forward(
        self, x: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor
    ) -> torch.Tensor:
        """x: (N, C, H, W); words: (N, L, D_text) -> updated words (N, L, D_text)."""
        pixels = self.pixel_norm(x.flatten(2).transpose(1, 2))  # (N, HW, C)
        queries = self.query_proj(self.word_norm(words))  # (N, L, C)
        update, _ = self.attention(queries, pixels, pixels, need_weights=False)
        update = self.back_proj(update) * word_mask.unsqueeze(-1)  # padding stays as it was
        return words + torch.tanh(self.alpha) * update
