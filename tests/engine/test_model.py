"""The model's parts, shapes, ablation switches and checkpoints (real MiniLM weights)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from saymap.engine.errors import CheckpointError, PromptError
from saymap.engine.model import SaymapConfig, SaymapModel, load_model, save_model
from saymap.engine.model.modeling import InputShapeError
from saymap.engine.model.reference_bank import attach_class_bank
from saymap.engine.prompt import token_warnings
from saymap.engine.registry import resolve_checkpoint

ABLATIONS = [
    "use_pixel_word_attention",
    "use_bidirectional_alignment",
    "use_cross_scale_enhancement",
    "use_twin_decoder",
]


@pytest.fixture(scope="module")
def tiny() -> SaymapModel:
    torch.manual_seed(0)
    return SaymapModel(SaymapConfig.named("tiny")).eval()


def test_tiny_fits_the_cpu_budget(tiny: SaymapModel) -> None:
    vision_and_fusion = sum(
        p.numel() for n, p in tiny.named_parameters() if not n.startswith("text_encoder.")
    )
    assert tiny.trainable_parameters() == vision_and_fusion  # the text encoder is frozen
    assert vision_and_fusion <= 10_000_000


def test_forward_shapes_and_prompt_broadcast(tiny: SaymapModel) -> None:
    text = tiny.encode_text(["the round storage tank"])
    assert text.embeddings.shape == (1, 20, 384) and text.mask.shape == (1, 20)
    pixels = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        out = tiny(pixels, text)
        one_by_one = torch.cat([tiny(pixels[i : i + 1], text).logits for i in range(2)])
    assert out.logits.shape == (2, 1, 96, 128)
    assert out.target_logits.shape == (2, 1, 24, 32)
    assert out.background_logits is not None
    # One prompt for a batch is that prompt given to each image: the same logits per image.
    assert torch.allclose(out.logits, one_by_one, atol=1e-4)
    assert not torch.allclose(out.logits[0], out.logits[1], atol=1e-2)  # two images, two maps


def test_prompt_changes_the_output(tiny: SaymapModel) -> None:
    pixels = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = tiny(pixels, tiny.encode_text(["building"])).logits
        b = tiny(pixels, tiny.encode_text(["the white car on the left"])).logits
    assert not torch.allclose(a, b)


def test_a_second_prompt_reuses_the_pixel_embedding_exactly(tiny: SaymapModel) -> None:
    """What a multi-prompt request shares (stem + stage 1) gives the same logits."""
    pixels = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        shared = tiny.embed_pixels(pixels)
        assert shared.shape == (2, tiny.config.hidden_sizes[0], 16, 16)
        for prompt in ("building", "the white car on the left"):
            text = tiny.encode_text([prompt])
            alone = tiny(pixels, text).logits
            reused = tiny(pixels, text, pixel_embedding=shared).logits
            assert torch.equal(alone, reused)


def test_bad_inputs_are_named(tiny: SaymapModel) -> None:
    text = tiny.encode_text(["tree"])
    with pytest.raises(InputShapeError, match="multiple of the model stride 32"):
        tiny(torch.rand(1, 3, 100, 64), text)
    with pytest.raises(InputShapeError, match=r"\(N, 3, H, W\)"):
        tiny(torch.rand(1, 4, 64, 64), text)
    with pytest.raises(PromptError, match="empty"):
        tiny.encode_text(["   "])


def test_long_prompt_is_truncated_with_a_warning(
    tiny: SaymapModel, caplog: pytest.LogCaptureFixture
) -> None:
    prompt = " ".join(["the large red building next to the river"] * 5)
    text = tiny.encode_text([prompt])
    assert text.mask.sum() == 20
    assert not caplog.records, "the encoder cuts silently; the pipeline warns once"
    warnings = token_warnings(tiny, [prompt, "tree"])
    assert len(warnings) == 1 and "the model reads the first 20" in warnings[0]
    assert [r.getMessage() for r in caplog.records] == warnings


@pytest.mark.parametrize("switch", ABLATIONS)
def test_each_component_can_be_switched_off(switch: str, tiny: SaymapModel) -> None:
    config = SaymapConfig.named("tiny", **{switch: False})
    model = SaymapModel(config, text_encoder=tiny.text_encoder)
    out = model(torch.rand(2, 3, 64, 64), tiny.encode_text(["ship"]))
    out.logits.mean().backward()
    assert model.trainable_parameters() < tiny.trainable_parameters()
    assert (out.background_logits is None) == (switch == "use_twin_decoder")
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_checkpoint_round_trip(tiny: SaymapModel, tmp_path) -> None:
    folder = save_model(tiny, tmp_path / "m", {"name": "test", "data": "none"})
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "model_card.json",
    ]
    stored = load_file(str(folder / "model.safetensors"))
    assert not any(k.startswith("text_encoder.") for k in stored)  # frozen: rebuilt from package
    loaded = load_model(folder)
    pixels, text = torch.rand(1, 3, 64, 64), tiny.encode_text(["vehicle"])
    with torch.no_grad():
        assert torch.equal(tiny(pixels, text).logits, loaded(pixels, text).logits)
    assert loaded.card["name"] == "test"


def test_corrupt_and_mismatched_checkpoints_fail_with_names(tiny: SaymapModel, tmp_path) -> None:
    folder = save_model(tiny, tmp_path / "m", {})

    weights = folder / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(folder)

    weights.write_bytes(good)
    state = load_file(str(weights))
    state["decoder.film.weight"] = torch.zeros(3, 3)
    del state["backbone.net.embeddings.layernorm.bias"]
    save_file(state, str(weights))
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    assert "missing: backbone.net.embeddings.layernorm.bias" in str(err.value)
    assert "decoder.film.weight (checkpoint (3, 3)" in str(err.value)

    config = json.loads((folder / "config.json").read_text())
    config["hidden_sizes"] = [32, 64, 128, 256]
    config["surprise"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown keys: surprise"):
        load_model(folder)

    del config["surprise"]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"has no model\.safetensors"):
        load_model(folder)
    with pytest.raises(CheckpointError, match=r"has no config\.json"):
        load_model(tmp_path)  # a folder, but not a checkpoint
    with pytest.raises(CheckpointError, match="no checkpoint folder or model named"):
        load_model(resolve_checkpoint("no-such-model"))


@pytest.mark.slow
def test_base_configuration_is_the_papers_scale(tiny: SaymapModel) -> None:
    """Swin-B at 480 px (the text encoder here is MiniLM: BERT-base cannot be fetched offline)."""
    config = SaymapConfig.named(
        "base", text_encoder="all-MiniLM-L6-v2", text_hidden_size=384, freeze_text_encoder=True
    )
    model = SaymapModel(config, text_encoder=tiny.text_encoder).eval()
    backbone = sum(p.numel() for p in model.backbone.parameters())
    assert 85e6 < backbone < 90e6  # Swin-B: 87.8 M with its classifier, 86.7 M without
    with torch.no_grad():
        out = model(torch.rand(1, 3, 480, 480), tiny.encode_text(["airplane"]))
    assert out.logits.shape == (1, 1, 480, 480)


def test_a_class_bank_enriches_bare_class_names_only_and_travels_with_the_checkpoint(
    tiny: SaymapModel, tmp_path
) -> None:
    model = SaymapModel(SaymapConfig.named("tiny"), text_encoder=tiny.text_encoder)
    plain = model.encode_text(["Storage  Tank", "the tank by the river"]).embeddings
    attach_class_bank(model, ["storage tank"], torch.randn(1, 20, 384))
    banked = model.encode_text(["Storage  Tank", "the tank by the river"]).embeddings
    assert not torch.allclose(banked[0], plain[0])  # normalised name found in the bank
    assert torch.equal(banked[1], plain[1])  # a sentence goes in as typed
    loaded = load_model(save_model(model, tmp_path / "m", {}))
    assert loaded.config.bank_classes == ["storage tank"]
    assert torch.allclose(loaded.encode_text(["storage tank"]).embeddings, banked[:1], atol=1e-6)
    attach_class_bank(model, [], None)
    assert torch.equal(model.encode_text(["Storage  Tank"]).embeddings, plain[:1])
