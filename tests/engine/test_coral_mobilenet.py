"""The Coral MobileNetV2 conversion reproduces the TFLite interpreter (../shared/weights/coral).

The float model built from the converted safetensors must give the TFLite model's top-1 on the
Coral test images and logits that correlate with its (dequantised) pre-softmax logits.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from saymap.engine.errors import CheckpointError
from saymap.engine.model.mobilenet_v2 import MobileNetV2Classifier, tf_same_padding
from saymap.training import pretrained

CORAL = pretrained.coral_source().parent
EXPECTED_TOP1 = {"cat.bmp": 286, "bird.bmp": 20}  # "Egyptian cat", "chickadee"

needs_coral = pytest.mark.skipif(
    not pretrained.coral_source().is_file(),
    reason=f"Coral weights not found at {CORAL} (../shared is beside CI's clone only)",
)
needs_litert = pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None,
    reason="ai-edge-litert (the `convert` extra) is not installed; run `make setup`",
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pretrained.ensure_coral_mobilenet(tmp_path_factory.mktemp("cache"))


def _pixels(name: str) -> np.ndarray:
    """RGB uint8 224x224, resized as the Coral README's expected answers were measured."""
    from PIL import Image

    with Image.open(CORAL / name) as image:
        return np.asarray(image.convert("RGB").resize((224, 224), Image.BILINEAR), np.uint8)


def _tflite_logits(pixels: np.ndarray) -> np.ndarray:
    """The interpreter's pre-softmax logits (the only other (1, 1001) tensor), dequantised."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "for debugging purposes only": reading logits is that
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(
            str(pretrained.coral_source()), experimental_preserve_all_tensors=True
        )
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[None])
    interpreter.invoke()
    output = interpreter.get_output_details()[0]["index"]
    (logits,) = [
        d
        for d in interpreter.get_tensor_details()
        if tuple(d["shape"]) == (1, 1001) and d["index"] != output
    ]
    scale, zero_point = logits["quantization"]
    return (interpreter.get_tensor(logits["index"])[0].astype(np.float32) - zero_point) * scale


@needs_coral
@needs_litert
@pytest.mark.parametrize("image", sorted(EXPECTED_TOP1))
def test_converted_float_model_matches_the_tflite_interpreter(converted: Path, image: str) -> None:
    model = MobileNetV2Classifier().eval()
    model.load_state_dict(load_file(str(converted)), strict=True)
    pixels = _pixels(image)
    x = torch.from_numpy((pixels.astype(np.float32) - 128) / 128).permute(2, 0, 1)[None]
    with torch.no_grad():
        ours = model(x)[0].numpy()
    theirs = _tflite_logits(pixels)
    assert int(theirs.argmax()) == EXPECTED_TOP1[image]
    assert int(ours.argmax()) == EXPECTED_TOP1[image]
    assert np.corrcoef(ours, theirs)[0, 1] >= 0.99


@needs_coral
@needs_litert
def test_conversion_runs_once_and_is_cached(converted: Path) -> None:
    before = converted.stat().st_mtime_ns
    assert pretrained.ensure_coral_mobilenet(converted.parent) == converted
    assert converted.stat().st_mtime_ns == before


def test_missing_coral_weights_name_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SAYMAP_CORAL_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match=r"mobilenet_v2_1\.0_224_quant\.tflite"):
        pretrained.ensure_coral_mobilenet(tmp_path / "cache")


def test_tf_same_padding_puts_the_odd_pixel_right_and_bottom() -> None:
    x = torch.ones(1, 1, 4, 6)
    padded = tf_same_padding(x, kernel=3, stride=2)  # total pad 1: (0 before, 1 after)
    assert padded.shape == (1, 1, 5, 7)
    assert padded[..., 0, :].sum() > 0 and padded[..., -1, :].sum() == 0
    assert tf_same_padding(x, kernel=3, stride=1).shape == (1, 1, 6, 8)
