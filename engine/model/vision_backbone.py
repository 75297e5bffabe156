"""The hierarchical 4-stage vision backbone, run stage by stage for early fusion (LAVT).

Wraps transformers' ConvNeXt or Swin, or the project's MobileNetV2, so that `stem` and
`stage(i, x)` can be called one at a time with language fusion between them. Every stage takes
and returns (N, C, H, W); the downsampling that leads into stage i happens at the start of
stage i.
"""

from __future__ import annotations

import torch
from torch import nn

from saymap.engine.errors import CheckpointError
from saymap.engine.model.configuration import SaymapConfig
from saymap.engine.model.mobilenet_v2 import STAGE_BLOCKS, STAGE_CHANNELS, MobileNetV2Features


class VisionBackbone(nn.Module):
    def __init__(self, config: SaymapConfig) -> None:
        super().__init__()
        self.kind = config.backbone
        if self.kind == "convnext":
            self.net = _build_convnext(config)
        elif self.kind == "swin":
            self.net = _build_swin(config)
        elif self.kind == "mobilenet_v2":
            self.net = _build_mobilenet_v2(config)
        else:
            raise CheckpointError(
                f"unknown backbone {config.backbone!r}; use convnext, swin or mobilenet_v2"
            )
        if self.kind != "mobilenet_v2":
            # The final norm feeds the classifier's pooling, which stage-wise use never
            # reaches; left in, it would be a parameter without gradient (DDP refuses those).
            self.net.layernorm = nn.Identity()
        self.hidden_sizes = list(config.hidden_sizes)

    def stem(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised -> (N, C0, H/4, W/4)."""
        if self.kind == "mobilenet_v2":
            return self.net.stem(pixel_values)
        if self.kind == "convnext":
            return self.net.embeddings(pixel_values)
        tokens, (h, w) = self.net.embeddings(pixel_values)  # (N, H/4*W/4, C0)
        return _tokens_to_map(tokens, h, w)

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """(N, C_{i-1}, H_{i-1}, W_{i-1}) -> (N, C_i, H_i, W_i), stride 4·2^i."""
        if self.kind == "mobilenet_v2":
            return self.net.stage(index, x)
        if self.kind == "convnext":
            return self.net.encoder.stages[index](x)
        layers = self.net.encoder.layers
        _, _, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, C, H, W) -> (N, HW, C)
        if index > 0:  # Swin's patch merging sits at the end of the previous stage
            tokens = layers[index - 1].downsample(tokens, (h, w))
            h, w = (h + 1) // 2, (w + 1) // 2
        for block in layers[index].blocks:
            tokens = block(tokens, (h, w))[0]
        return _tokens_to_map(tokens, h, w)


def _tokens_to_map(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    n, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(n, c, h, w)  # (N, HW, C) -> (N, C, H, W)


def _build_convnext(config: SaymapConfig) -> nn.Module:
    from saymap.engine.model.text_encoder import TRANSFORMERS_IMPORT_LOCK

    with (
        TRANSFORMERS_IMPORT_LOCK
    ):  # see text_encoder: transformers' lazy imports are not thread-safe
        from transformers import ConvNextConfig, ConvNextModel

    if config.backbone_pretrained:
        net = ConvNextModel.from_pretrained(config.backbone_pretrained)
        _check_pretrained(config, list(net.config.hidden_sizes), list(net.config.depths))
        return net
    return ConvNextModel(
        ConvNextConfig(
            num_channels=3,
            hidden_sizes=list(config.hidden_sizes),
            depths=list(config.depths),
            drop_path_rate=config.drop_path_rate,
        )
    )


def _build_swin(config: SaymapConfig) -> nn.Module:
    from saymap.engine.model.text_encoder import TRANSFORMERS_IMPORT_LOCK

    with TRANSFORMERS_IMPORT_LOCK:
        from transformers import SwinConfig, SwinModel

    if config.backbone_pretrained:
        net = SwinModel.from_pretrained(config.backbone_pretrained)
        c = net.config
        _check_pretrained(config, [c.embed_dim * 2**i for i in range(4)], list(c.depths))
        return net
    return SwinModel(
        SwinConfig(
            image_size=config.tile_size,
            num_channels=3,
            embed_dim=config.hidden_sizes[0],
            depths=list(config.depths),
            num_heads=list(config.swin_num_heads),
            window_size=config.swin_window_size,
            drop_path_rate=config.drop_path_rate,
        ),
        add_pooling_layer=False,
    )


def _build_mobilenet_v2(config: SaymapConfig) -> nn.Module:
    """Random init: the Coral weights are the trainer's to load (saymap.training.pretrained);
    a saved model holds its own, so building one never needs the Coral file."""
    depths = [end - start for start, end in STAGE_BLOCKS]
    if list(config.hidden_sizes) != list(STAGE_CHANNELS) or list(config.depths) != depths:
        raise CheckpointError(
            f"MobileNetV2 1.0 has hidden sizes {list(STAGE_CHANNELS)} and depths {depths}; "
            f"the config says {config.hidden_sizes} and {config.depths}"
        )
    return MobileNetV2Features()


def _check_pretrained(config: SaymapConfig, hidden: list[int], depths: list[int]) -> None:
    if hidden != list(config.hidden_sizes) or depths != list(config.depths):
        raise CheckpointError(
            f"pretrained backbone {config.backbone_pretrained!r} has hidden sizes {hidden} and "
            f"depths {depths}; the config says {config.hidden_sizes} and {config.depths}"
        )
