"""LRB-WREL's Learnable Reference Bank: learned word embeddings that enrich a class name.

A bare class name ("building") leaves most of the 20 token slots as padding. The bank
writes learned embeddings into exactly those padding positions (and unmasks them), so
the text encoder turns "building" + bank entry into features that carry what a full
sentence would. Training fits one entry per weak sample (as published) or one per class
(reusable at inference, where no sample identity exists).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ReferenceBank(nn.Module):
    def __init__(self, entries: int, max_tokens: int, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.entries = nn.Parameter(torch.randn(entries, max_tokens, dim) * init_std)

    def __len__(self) -> int:
        return self.entries.shape[0]

    def write(
        self, word_embeds: torch.Tensor, attention_mask: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """word_embeds (P, L, D), attention_mask (P, L), index (P,) -> embeds and a full mask."""
        padding = ~attention_mask.bool()  # (P, L)
        bank = self.entries[index].to(word_embeds.dtype)  # (P, L, D)
        embeds = torch.where(padding.unsqueeze(-1), bank, word_embeds)
        return embeds, torch.ones_like(attention_mask)


def normalise_class_name(text: str) -> str:
    return " ".join(text.lower().split())


def attach_class_bank(model: Any, classes: list[str], entries: torch.Tensor | None) -> None:
    """Give `model` (a SaymapModel) a class-level bank, `entries` (C, L, D) in `classes`
    order; no classes or no entries takes it away, so class names go in as typed."""
    if not classes or entries is None:
        model.config.bank_classes, model.class_bank = [], None
        return
    model.config.bank_classes = list(classes)
    model.class_bank = ReferenceBank(len(classes), entries.shape[1], entries.shape[2])
    with torch.no_grad():
        model.class_bank.entries.copy_(entries)
    model.class_bank.to(entries.device)
