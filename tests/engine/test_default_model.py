"""The shipped default model: it loads from the repository alone and finds what it is asked for.

Its run on Kampala's hold-out strip needs the real samples: tests/training/test_real_data.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saymap.engine.model import load_model
from saymap.engine.paths import SHIPPED_MODELS
from saymap.training.synthetic.scene import generate_scene

pytestmark = pytest.mark.skipif(
    not (SHIPPED_MODELS / "default" / "model.safetensors").is_file(),
    reason="no shipped default model in engine/models/default (make train-default)",
)


def test_default_model_card_says_what_it_is() -> None:
    model = load_model(SHIPPED_MODELS / "default")
    card = model.card
    assert model.config.name == "mobile"  # the ImageNet MobileNetV2 backbone
    for key in ("recipe", "data", "command", "known_limits", "validation", "gsd_m"):
        assert card.get(key), f"model card lacks {key}"
    assert card["scorecard_real_holdouts"]["pooled_orthophoto_building_iou"] > 0.3
    assert {"building", "road", "water", "vegetation", "vehicle"} <= set(card["classes"])


def test_default_model_segments_unseen_synthetic_scenes() -> None:
    """Seed 99 scenes were never generated for training (the recipe uses seed 0)."""
    model = load_model(SHIPPED_MODELS / "default")
    inter = union = 0
    for index in range(6):
        scene = generate_scene(99, index, "a", 256)
        for expr in scene.expressions[:4]:
            pixels = torch.from_numpy(scene.image).permute(2, 0, 1)[None].float() / 255
            with torch.no_grad():
                logits = model(pixels, model.encode_text([expr.text])).logits[0, 0]
            pred = logits.numpy() > 0
            truth = np.isin(scene.instances, list(expr.instance_ids))
            inter += np.count_nonzero(pred & truth)
            union += np.count_nonzero(pred | truth)
    assert inter / union > 0.3  # oIoU; a randomly initialised one scores 0.02 here
