"""D-MOLS, BTDNet's dual-modal object learning, as an auxiliary objective (off at inference).

A share of the visual tokens of a deep stage and a share of the words are hidden behind
learned mask embeddings; each is reconstructed by attending to the other modality, and the
reconstruction error is the loss. Gradients reach the backbone, the fusion and the
alignment through the context the heads attend to, so the fused features have to carry
what the other modality says about the object.

Here the masking acts on the features of the normal forward pass (not on the raw inputs,
which would need a second forward), which keeps its cost to two small attention heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DualModalObjectLearning(nn.Module):
    def __init__(self, visual_dim: int, text_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.visual_mask = nn.Parameter(torch.zeros(visual_dim))
        self.word_mask = nn.Parameter(torch.zeros(text_dim))
        self.visual_from_words = nn.MultiheadAttention(
            visual_dim, heads, kdim=text_dim, vdim=text_dim, batch_first=True
        )
        self.words_from_visual = nn.MultiheadAttention(
            text_dim, heads, kdim=visual_dim, vdim=visual_dim, batch_first=True
        )
        self.visual_out = nn.Linear(visual_dim, visual_dim)
        self.word_out = nn.Linear(text_dim, text_dim)

    def forward(
        self,
        visual: torch.Tensor,
        words: torch.Tensor,
        word_mask: torch.Tensor,
        ratio: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """visual: (N, C, H, W); words: (N, L, D); word_mask: (N, L) -> scalar loss."""
        tokens = visual.flatten(2).transpose(1, 2)  # (N, HW, C)
        n, hw, _ = tokens.shape
        hide_v = torch.rand(n, hw, 1, device=visual.device, generator=generator) < ratio
        hide_w = torch.rand(*words.shape[:2], 1, device=words.device, generator=generator) < ratio
        hide_w = hide_w & word_mask.unsqueeze(-1)
        masked_tokens = torch.where(hide_v, self.visual_mask.to(tokens.dtype), tokens)
        masked_words = torch.where(hide_w, self.word_mask.to(words.dtype), words)

        # Hidden pixels are rebuilt from the words (and their own mask embedding as query).
        rebuilt_v, _ = self.visual_from_words(
            masked_tokens,
            masked_words,
            masked_words,
            key_padding_mask=~word_mask,
            need_weights=False,
        )
        rebuilt_v = self.visual_out(rebuilt_v)
        # Hidden words are rebuilt from the pixels.
        rebuilt_w, _ = self.words_from_visual(
            masked_words, masked_tokens, masked_tokens, need_weights=False
        )
        rebuilt_w = self.word_out(rebuilt_w)

        loss_v = _masked_cosine(rebuilt_v, tokens.detach(), hide_v)
        loss_w = _masked_cosine(rebuilt_w, words.detach(), hide_w)
        return loss_v + loss_w


def _masked_cosine(pred: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    weight = hidden.squeeze(-1).to(pred.dtype)
    if weight.sum() == 0:
        return pred.sum() * 0.0
    per_token = 1.0 - F.cosine_similarity(pred.float(), target.float(), dim=-1)
    return (per_token * weight).sum() / weight.sum()
