"""SaymapModel: the referring segmenter assembled from its named parts.

Data flow for one batch of tiles (shapes for a 512 px tile, tiny config):
  pixels (N, 3, 512, 512) -> stem (N, 40, 128, 128)
  stage i -> PixelWordAttention -> (BidirectionalAlignment updates the words, deep stages)
  4 maps at strides 4, 8, 16, 32 -> CrossScaleEnhancement on strides 4 and 8
  -> TwinDecoder -> target/background logits (N, 1, 128, 128) -> logits (N, 1, 512, 512)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from saymap.engine.errors import SaymapError
from saymap.engine.model.bidirectional_alignment import BidirectionalAlignment
from saymap.engine.model.configuration import SaymapConfig
from saymap.engine.model.cross_scale_enhancement import CrossScaleEnhancement
from saymap.engine.model.outputs import SegmentationOutput, TextFeatures
from saymap.engine.model.pixel_word_attention import PixelWordAttention
from saymap.engine.model.reference_bank import ReferenceBank, normalise_class_name
from saymap.engine.model.text_encoder import TextEncoder
from saymap.engine.model.twin_decoder import TwinDecoder
from saymap.engine.model.vision_backbone import VisionBackbone


class InputShapeError(SaymapError, ValueError):
    """Pixels handed to the model have the wrong shape."""


class SaymapModel(nn.Module):
    def __init__(self, config: SaymapConfig, text_encoder: TextEncoder | None = None) -> None:
        super().__init__()
        self.config = config
        self.text_encoder = text_encoder if text_encoder is not None else TextEncoder(config)
        self.backbone = VisionBackbone(config)
        dims, text_dim = config.hidden_sizes, config.text_hidden_size
        self.fusion = (
            nn.ModuleList(PixelWordAttention(d, text_dim, config.fusion_heads) for d in dims)
            if config.use_pixel_word_attention
            else None
        )
        self.alignment = (
            nn.ModuleDict(
                {
                    str(i): BidirectionalAlignment(dims[i], text_dim, config.fusion_heads)
                    for i in config.alignment_stages
                }
            )
            if config.use_bidirectional_alignment
            else None
        )
        self.cross_scale = (
            CrossScaleEnhancement(dims[:2], dims[-1], text_dim)
            if config.use_cross_scale_enhancement
            else None
        )
        self.decoder = TwinDecoder(dims, text_dim, config.decoder_dim, config.use_twin_decoder)
        self.class_bank = (
            ReferenceBank(len(config.bank_classes), config.max_tokens, text_dim)
            if config.bank_classes
            else None
        )
        self.register_buffer("image_mean", torch.tensor(config.image_mean).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(config.image_std).view(1, 3, 1, 1))

    @property
    def device(self) -> torch.device:
        return self.image_mean.device

    def count_tokens(self, prompt: str) -> int:
        return self.text_encoder.count_tokens(prompt)

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> TextFeatures:
        """Encode prompts once per request; the features are reused for every tile.

        A prompt that is exactly a class name of the class-level reference bank is
        encoded with its learned entry (LRB-WREL); anything else as typed.
        """
        tokens = self.text_encoder.tokenize(prompts)
        ids = tokens["input_ids"].to(self.device)
        mask = tokens["attention_mask"].to(self.device)
        if self.class_bank is None:
            return self.text_encoder(ids, mask)
        classes = {c: i for i, c in enumerate(self.config.bank_classes)}
        index = [classes.get(normalise_class_name(p), -1) for p in prompts]
        if all(i < 0 for i in index):
            return self.text_encoder(ids, mask)
        embeds = self.text_encoder.word_embeddings(ids)
        banked_embeds, banked_mask = self.class_bank.write(
            embeds, mask, torch.tensor([max(i, 0) for i in index], device=self.device)
        )
        use = torch.tensor([i >= 0 for i in index], device=self.device)
        embeds = torch.where(use[:, None, None], banked_embeds, embeds)
        mask = torch.where(use[:, None], banked_mask, mask)
        return self.text_encoder(ids, mask, inputs_embeds=embeds)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def embed_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalise, stem and stage 1: the prompt-independent part of the forward pass.

        Early fusion (LAVT) brings the words in right after stage 1, so this is all that a
        second prompt on the same tiles can reuse: (N, 3, H, W) -> (N, C1, H/4, W/4).
        """
        self._check_pixels(pixel_values)
        x = (pixel_values - self.image_mean) / self.image_std
        return self.backbone.stage(0, self.backbone.stem(x))

    def forward(
        self,
        pixel_values: torch.Tensor,
        text: TextFeatures,
        output_features: bool = False,
        pixel_embedding: torch.Tensor | None = None,
    ) -> SegmentationOutput:
        """pixel_values: (N, 3, H, W) in [0, 1], H and W multiples of 32; pixel_embedding:
        `embed_pixels(pixel_values)` when the caller already has it (several prompts)."""
        n, _, height, width = pixel_values.shape
        text = text.expand(n)
        words, word_mask = text.embeddings.to(pixel_values.dtype), text.mask
        x = self.embed_pixels(pixel_values) if pixel_embedding is None else pixel_embedding

        features = []
        for i in range(4):
            if i:
                x = self.backbone.stage(i, x)
            if self.fusion is not None:
                x = self.fusion[i](x, words, word_mask)
            if self.alignment is not None and str(i) in self.alignment:
                words = self.alignment[str(i)](x, words, word_mask)
            features.append(x)

        sentence = _mean_pool(words, word_mask)
        if self.cross_scale is not None:
            features[:2] = self.cross_scale(features[:2], features[-1], sentence)
        target, background = self.decoder(features, sentence)
        logits = target - background if background is not None else target
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        if output_features:
            return SegmentationOutput(logits, target, background, features, words)
        return SegmentationOutput(logits, target, background)

    def _check_pixels(self, pixel_values: torch.Tensor) -> None:
        stride = self.config.stride
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise InputShapeError(
                f"expected pixels of shape (N, 3, H, W), got {tuple(pixel_values.shape)}"
            )
        h, w = pixel_values.shape[-2:]
        if h % stride or w % stride:
            raise InputShapeError(f"tile {h}x{w} is not a multiple of the model stride {stride}")


def _mean_pool(words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, L, D), (N, L) -> (N, D): the mean of real-token features."""
    weights = mask.to(words.dtype).unsqueeze(-1)
    return (words * weights).sum(1) / weights.sum(1).clamp(min=1.0)
