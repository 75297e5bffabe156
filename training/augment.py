"""Photometric augmentation for real chips: the same roofs under another sensor and sky.

Real imagery differs from scene to scene in exposure, contrast, white balance, sharpness
and compression far more than a few hundred labelled buildings can show. Each real chip
gets a random brightness, contrast, hue, blur and JPEG round trip. Geometry is left alone:
a flip would turn "the building left of the road" into a wrong label.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PhotometricAugment:
    brightness: float = 0.25  # multiply by 1 ± this
    contrast: float = 0.25  # scale around the mean by 1 ± this
    hue_degrees: float = 12.0  # rotate hue by ± this
    saturation: float = 0.25  # scale saturation by 1 ± this
    blur_p: float = 0.25  # chance of a Gaussian blur of sigma 0.4-1.2 px
    jpeg_p: float = 0.3  # chance of a JPEG round trip at quality 35-90

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, 3) uint8 → (H, W, 3) uint8."""
        x = image.astype(np.float32)
        x *= 1.0 + rng.uniform(-self.brightness, self.brightness)
        mean = x.mean()
        x = (x - mean) * (1.0 + rng.uniform(-self.contrast, self.contrast)) + mean
        x = _rotate_hue(x, rng.uniform(-self.hue_degrees, self.hue_degrees))
        grey = x.mean(axis=-1, keepdims=True)
        x = grey + (x - grey) * (1.0 + rng.uniform(-self.saturation, self.saturation))
        out = np.clip(x + 0.5, 0, 255).astype(np.uint8)
        if rng.random() < self.blur_p or rng.random() < self.jpeg_p:
            out = _pil_degrade(out, rng, self.blur_p, self.jpeg_p)
        return out


def _rotate_hue(x: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate colours about the grey axis (a hue shift that keeps luminance and is cheap)."""
    angle = np.deg2rad(degrees)
    cos, sin = np.cos(angle), np.sin(angle)
    k = 1.0 / 3.0
    s = np.sqrt(k)
    matrix = np.array(
        [
            [cos + (1 - cos) * k, k * (1 - cos) - s * sin, k * (1 - cos) + s * sin],
            [k * (1 - cos) + s * sin, cos + k * (1 - cos), k * (1 - cos) - s * sin],
            [k * (1 - cos) - s * sin, k * (1 - cos) + s * sin, cos + k * (1 - cos)],
        ],
        np.float32,
    )
    return x @ matrix.T


def _pil_degrade(
    image: np.ndarray, rng: np.random.Generator, blur_p: float, jpeg_p: float
) -> np.ndarray:
    from PIL import Image, ImageFilter

    pil = Image.fromarray(image)
    if rng.random() < blur_p:
        pil = pil.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.4, 1.2))))
    if rng.random() < jpeg_p:
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=int(rng.integers(35, 91)))
        buffer.seek(0)
        pil = Image.open(buffer).convert("RGB")
    return np.asarray(pil)
