"""The Coral MobileNetV2 conversion reproduces the TFLite interpreter (../shared/weights/coral).

The float model built from the converted safetensors must give the TFLite model's top-1 on the
Coral test images and logits that correlate with its (dequantised) pre-softmax logits, and the
`mobile` configuration starts from exactly those weights. Every test here needs the Coral
weights and ai-edge-litert, so the module skips once, with one reason, without them; the
tests that need neither are in test_mobile_config.py.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from saymap.engine.model import SaymapConfig, SaymapModel
from saymap.engine.model.mobilenet_v2 import MobileNetV2Classifier
from saymap.training import pretrained
from saymap.training.recipe import recipe_from_dict
from saymap.training.trainer import Trainer
from tests.engine.test_mobile_config import _mobile_recipe
from tests.training.painted import painted_samples

CORAL = pretrained.coral_source().parent
EXPECTED_TOP1 = {"cat.bmp": 286, "bird.bmp": 20}  # "Egyptian cat", "chickadee"

if not pretrained.coral_source().is_file():
    pytest.skip(
        f"Coral weights not found at {CORAL} (../shared is beside CI's clone only)",
        allow_module_level=True,
    )
if importlib.util.find_spec("ai_edge_litert") is None:
    pytest.skip(
        "ai-edge-litert (the `convert` extra) is not installed; run `make setup`",
        allow_module_level=True,
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


def test_conversion_runs_once_and_is_cached(converted: Path) -> None:
    before = converted.stat().st_mtime_ns
    assert pretrained.ensure_coral_mobilenet(converted.parent) == converted
    assert converted.stat().st_mtime_ns == before


@pytest.fixture(scope="module")
def coral_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted once per module, where SAYMAP_CACHE_DIR=<its parent> makes the trainer look."""
    cache = tmp_path_factory.mktemp("cache") / "weights"
    pretrained.ensure_coral_mobilenet(cache)
    return cache


def test_converted_weights_fill_every_backbone_tensor(coral_cache: Path) -> None:
    torch.manual_seed(0)
    model = SaymapModel(SaymapConfig.named("mobile")).eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        before = model.backbone.stage(3, _through(model, x, 3))
    keys = pretrained.load_pretrained_backbone(model, coral_cache)
    trunk = load_file(str(coral_cache / pretrained.CORAL_MOBILENET_FILE))
    state = model.backbone.net.state_dict()
    assert sorted(state) == keys and keys
    for key, value in state.items():
        assert torch.equal(value, trunk[f"features.{key}"]), key
    with torch.no_grad():
        after = model.backbone.stage(3, _through(model, x, 3))
    assert not torch.allclose(before, after)


def test_the_trainer_starts_mobile_from_the_coral_weights(
    tmp_path: Path, coral_cache: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SAYMAP_CACHE_DIR", str(coral_cache.parent))
    assert pretrained.default_cache_dir() == coral_cache
    trainer = Trainer(recipe_from_dict(_mobile_recipe()), tmp_path, painted_samples(2), None)
    trunk = load_file(str(coral_cache / pretrained.CORAL_MOBILENET_FILE))
    for key, value in trainer.model.backbone.net.state_dict().items():
        assert torch.equal(value, trunk[f"features.{key}"]), key


def _through(model: SaymapModel, x: torch.Tensor, stages: int) -> torch.Tensor:
    x = model.backbone.stem(x)
    for i in range(stages):
        x = model.backbone.stage(i, x)
    return x
