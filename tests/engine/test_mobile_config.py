"""The `mobile` configuration: MobileNetV2 stages under the fusion and decoder, Coral weights
loaded for training only, and the backbone's own learning rate."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from saymap.engine.errors import CheckpointError
from saymap.engine.model import SaymapConfig, SaymapModel, load_model, save_model
from saymap.engine.model.configuration import CORAL_MOBILENET_V2
from saymap.training import pretrained
from saymap.training.recipe import recipe_from_dict
from saymap.training.trainer import Trainer
from tests.training.painted import painted_samples

needs_coral = pytest.mark.skipif(
    not pretrained.coral_source().is_file() or importlib.util.find_spec("ai_edge_litert") is None,
    reason=f"needs {pretrained.coral_source()} and ai-edge-litert (`make setup`) to convert",
)


@pytest.fixture(scope="module")
def mobile() -> SaymapModel:
    torch.manual_seed(0)
    return SaymapModel(SaymapConfig.named("mobile")).eval()


@pytest.fixture(scope="module")
def coral_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted once per module, where SAYMAP_CACHE_DIR=<its parent> makes the trainer look."""
    cache = tmp_path_factory.mktemp("cache") / "weights"
    pretrained.ensure_coral_mobilenet(cache)
    return cache


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


@needs_coral
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


def _through(model: SaymapModel, x: torch.Tensor, stages: int) -> torch.Tensor:
    x = model.backbone.stem(x)
    for i in range(stages):
        x = model.backbone.stage(i, x)
    return x


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


@needs_coral
def test_the_trainer_starts_mobile_from_the_coral_weights(
    tmp_path: Path, coral_cache: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SAYMAP_CACHE_DIR", str(coral_cache.parent))
    assert pretrained.default_cache_dir() == coral_cache
    trainer = Trainer(recipe_from_dict(_mobile_recipe()), tmp_path, painted_samples(2), None)
    trunk = load_file(str(coral_cache / pretrained.CORAL_MOBILENET_FILE))
    for key, value in trainer.model.backbone.net.state_dict().items():
        assert torch.equal(value, trunk[f"features.{key}"]), key
