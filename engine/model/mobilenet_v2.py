"""MobileNetV2 (Sandler et al., 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks").

Width 1.0, batch norm folded into each convolution (conv + bias), ReLU6, and TensorFlow's
"SAME" padding, so that weights converted from the Coral TFLite file
(scripts/convert_coral_mobilenet.py) reproduce its logits. The segmenter uses the feature
stages at strides 4/8/16/32 (24/32/96/320 channels); the 1280-channel conv and the classifier
exist only in `MobileNetV2Classifier`, which the conversion test checks top-1 with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (expansion t, channels c, repeats n, first stride s): Table 2 of the paper.
INVERTED_RESIDUAL_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1001  # ImageNet's 1000 + index 0 "background", as the TF-slim checkpoints
STAGE_CHANNELS = (24, 32, 96, 320)  # the outputs at strides 4, 8, 16, 32
# Blocks [start, end) of each stage; the stem runs the conv and blocks 0-1 (stride 4).
STEM_BLOCKS = 2
STAGE_BLOCKS = ((2, 3), (3, 6), (6, 13), (13, 17))


def tf_same_padding(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad as TensorFlow's "SAME" does: the odd pixel goes right/bottom (torch pads evenly).

    Stride-2 convs on even sizes pad (0, 1): torch's symmetric padding=1 would shift every
    later feature by half a pixel and the converted logits would not match the TFLite ones.
    """
    h, w = x.shape[-2:]
    pad_h = max((-(-h // stride) - 1) * stride + kernel - h, 0)
    pad_w = max((-(-w // stride) - 1) * stride + kernel - w, 0)
    if not pad_h and not pad_w:
        return x
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


class FoldedConv(nn.Module):
    """Conv + bias (batch norm folded in) + optional ReLU6, with TF "SAME" padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        relu6: bool = True,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu6 = kernel, stride, relu6
        # At stride 1 "SAME" is symmetric and the conv pads itself (no copy of the input).
        padding = kernel // 2 if stride == 1 else 0
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride, padding, groups=groups, bias=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = tf_same_padding(x, self.kernel, self.stride)
        x = self.conv(x)
        return F.relu6(x) if self.relu6 else x


class InvertedResidual(nn.Module):
    """The paper's bottleneck: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear project;
    a residual connection when the stride is 1 and the channels are unchanged."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = FoldedConv(in_channels, hidden) if expansion != 1 else None
        self.depthwise = FoldedConv(hidden, hidden, kernel=3, stride=stride, groups=hidden)
        self.project = FoldedConv(hidden, out_channels, relu6=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class MobileNetV2Features(nn.Module):
    """The convolutional trunk, run as a stem (stride 4) and four stages (strides 4-32)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = FoldedConv(3, STEM_CHANNELS, kernel=3, stride=2)
        blocks = []
        channels = STEM_CHANNELS
        for expansion, out_channels, repeats, stride in INVERTED_RESIDUAL_SETTINGS:
            for i in range(repeats):
                blocks.append(
                    InvertedResidual(channels, out_channels, stride if i == 0 else 1, expansion)
                )
                channels = out_channels
        self.blocks = nn.ModuleList(blocks)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 24, H/4, W/4)."""
        x = self.conv_stem(_channels_last(x))
        for block in self.blocks[:STEM_BLOCKS]:
            x = block(x)
        return x.contiguous()

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """(N, C_{i-1}, ...) -> (N, STAGE_CHANNELS[i], H/(4·2^i), W/(4·2^i))."""
        start, end = STAGE_BLOCKS[index]
        x = _channels_last(x)
        for block in self.blocks[start:end]:
            x = block(x)
        return x.contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> the stride-32 features (N, 320, H/32, W/32)."""
        x = self.stem(x)
        for i in range(len(STAGE_BLOCKS)):
            x = self.stage(i, x)
        return x


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """The trunk runs channels-last: its depthwise convs take ~1.5x less time so on CPU
    (512 px, batch 4, 2 threads); stem and stages hand the fusion plain NCHW back."""
    return x.contiguous(memory_format=torch.channels_last)


class MobileNetV2Classifier(nn.Module):
    """The ImageNet classifier on the trunk: 1x1 conv to 1280 (ReLU6), global average pool,
    1x1 conv to 1001 logits. Only the conversion and its test use it; the segmenter does not."""

    def __init__(self) -> None:
        super().__init__()
        self.features = MobileNetV2Features()
        self.conv_head = FoldedConv(STAGE_CHANNELS[-1], HEAD_CHANNELS)
        self.classifier = nn.Conv2d(HEAD_CHANNELS, NUM_CLASSES, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 1001) logits."""
        x = self.conv_head(self.features(x))
        x = x.mean(dim=(2, 3), keepdim=True)  # (N, 1280, h, w) -> (N, 1280, 1, 1)
        return self.classifier(x).flatten(1)
