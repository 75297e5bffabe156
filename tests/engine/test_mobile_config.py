"""The `mobile` configuration: MobileNetV2 stages under the fusion and decoder, Coral weights
loaded for training only, and the backbone's own learning rate. The tests that need the Coral
weights themselves are in test_coral_mobilenet.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from saymap.engine.errors import CheckpointError
from saymap.engine.model import SaymapConfig, SaymapModel, load_model, save_model
from saymap.engine.model.configuration import CORAL_MOBILENET_V2
from saymap.engine.model.mobilenet_v2 import tf_same_padding
from saymap.training import pretrained
from saymap.training.recipe import recipe_from_dict
from saymap.training.trainer import Trainer
from tests.training.painted import painted_samples


@pytest.fixture(scope="module")
def mobile() -> SaymapModel:
    torch.manual_seed(0)
    return SaymapModel(SaymapConfig.named("mobile")).eval()


def test_mobile_builds_without_the_coral_file(tmp_path: Path, monkeypatch) -> None:
    """Only the trainer loads the Coral weights; building (as inference does) never needs them."""
    monkeypatch.setenv("SAYMAP_CORAL_DIR", str(tmp_path / "nowhere"))
    config = SaymapConfig.named("mobile")
    assert config.backbone == "mobilenet_v2" and config.backbone_pretrained == CORAL_MOBILENET_V2
    model = SaymapModel(config)
    folder = save_model(model, tmp_path / "mobile", {"note": "random, for tests"})
    loaded = load_model(folder)
    assert loaded.config.backbone_pretrained is None  # the weights are in the checkpoint
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[key], value), key


def test_forward_gives_full_resolution_logits(mobile: SaymapModel) -> None:
    text = mobile.encode_text(["the red roof"])
    with torch.no_grad():
        out = mobile(torch.rand(2, 3, 256, 256), text)
    assert out.logits.shape == (2, 1, 256, 256)


def test_stages_have_strides_4_to_32_and_the_mobilenet_channels(mobile: SaymapModel) -> None:
    backbone = mobile.backbone
    x = torch.rand(1, 3, 256, 256)
    shapes = []
    with torch.no_grad():
        x = backbone.stem(x)
        for i in range(4):
            x = backbone.stage(i, x)
            shapes.append(tuple(x.shape))
    assert shapes == [(1, 24, 64, 64), (1, 32, 32, 32), (1, 96, 16, 16), (1, 320, 8, 8)]
    assert mobile.config.hidden_sizes == [24, 32, 96, 320]


def test_normalisation_is_the_tflite_input_mapping(mobile: SaymapModel) -> None:
    q = torch.arange(256, dtype=torch.float32).view(1, 1, 1, 256).expand(1, 3, 1, 256)
    normalised = (q / 255 - mobile.image_mean) / mobile.image_std
    assert torch.allclose(normalised, (q - 128) / 128, atol=1e-6)


def test_mismatched_sizes_or_pretrained_source_are_refused() -> None:
    with pytest.raises(CheckpointError, match=r"MobileNetV2 1\.0 has hidden sizes"):
        SaymapModel(SaymapConfig.named("mobile", hidden_sizes=[24, 32, 64, 320]))
    with pytest.raises(CheckpointError, match="goes with mobilenet_v2"):
        SaymapConfig.named("tiny", backbone_pretrained=CORAL_MOBILENET_V2)


def _mobile_recipe(**overrides) -> dict:
    return {
        "model": {"config": "mobile", "overrides": overrides},
        "data": {"chip_size": 64},
        "optim": {"steps": 4, "batch_size": 2, "warmup_steps": 2, "backbone_lr_scale": 0.1},
        "wrel": {"method": "accurate-only"},
        "run": {"eval_every": 0, "device": "cpu"},
    }


def test_the_backbone_trains_at_its_own_learning_rate(tmp_path: Path) -> None:
    recipe = recipe_from_dict(_mobile_recipe(backbone_pretrained=None))
    trainer = Trainer(recipe, tmp_path, painted_samples(2), None)
    head, backbone = trainer.optimizer.param_groups
    ids = {id(p) for p in trainer.model.backbone.parameters()}
    assert {id(p) for p in backbone["params"]} == ids
    assert not ids & {id(p) for p in head["params"]}
    trainer._model_step(0, "supervised", 0)  # warmup step 1 of 2: lr / 2 for both groups
    assert head["lr"] == pytest.approx(recipe.optim.lr / 2)
    assert backbone["lr"] == pytest.approx(recipe.optim.lr / 2 * 0.1)


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
