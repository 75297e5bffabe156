"""Pretrained backbone weights for a fresh training run, converted once and cached.

A config whose `backbone_pretrained` is `"coral:mobilenet_v2"` starts its MobileNetV2 trunk
from the Coral ImageNet weights: `ensure_coral_mobilenet` converts the TFLite file beside the
project (../shared/weights/coral) into a float safetensors file in the cache the first time,
and `load_pretrained_backbone` copies it into the model. Only the trainer calls this; a saved
model carries its backbone in its own safetensors, so inference never needs the Coral file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from saymap.engine.errors import CheckpointError
from saymap.engine.model.configuration import CORAL_MOBILENET_V2

if TYPE_CHECKING:
    from saymap.engine.model import SaymapModel

ROOT = Path(__file__).resolve().parents[1]
CONVERT_SCRIPT = ROOT / "scripts" / "convert_coral_mobilenet.py"
CORAL_TFLITE = "mobilenet_v2_1.0_224_quant.tflite"
CORAL_MOBILENET_FILE = "coral_mobilenet_v2.safetensors"
TRUNK_PREFIX = "features."  # the converted file also holds the classifier head


def coral_source() -> Path:
    """The Coral TFLite file: `SAYMAP_CORAL_DIR`, else ../shared/weights/coral beside the repo."""
    override = os.environ.get("SAYMAP_CORAL_DIR")
    folder = Path(override) if override else ROOT.parent / "shared" / "weights" / "coral"
    return folder / CORAL_TFLITE


def default_cache_dir() -> Path:
    """Converted weights: `SAYMAP_CACHE_DIR`, else the user's cache folder, + /weights."""
    override = os.environ.get("SAYMAP_CACHE_DIR")
    base = Path(override) if override else Path(platformdirs.user_cache_dir("saymap", "saymap"))
    return base / "weights"


def ensure_coral_mobilenet(cache_dir: Path | None = None) -> Path:
    """The converted MobileNetV2 weights, converting them first when the cache lacks them."""
    out = Path(cache_dir if cache_dir is not None else default_cache_dir()) / CORAL_MOBILENET_FILE
    if out.is_file():
        return out
    source = coral_source()
    if not source.is_file():
        raise CheckpointError(
            f"backbone_pretrained {CORAL_MOBILENET_V2!r} needs {source} to convert once into "
            f"{out}; put the Coral weights there (or set SAYMAP_CORAL_DIR), or train without it"
        )
    if not CONVERT_SCRIPT.is_file():
        raise CheckpointError(
            f"converting {source.name} needs a SayMap checkout ({CONVERT_SCRIPT})"
        )
    done = subprocess.run(
        [sys.executable, str(CONVERT_SCRIPT), "--source", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not out.is_file():
        lines = (done.stderr or done.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise CheckpointError(f"converting {source.name} failed: {reason}")
    return out


def load_pretrained_backbone(model: SaymapModel, cache_dir: Path | None = None) -> list[str]:
    """Fill the backbone from `config.backbone_pretrained` when it names converted weights.

    Returns the backbone keys filled (none for other values: hub backbones are loaded when
    the model is built). Every parameter and buffer must be in the file, with its shape.
    """
    if model.config.backbone_pretrained != CORAL_MOBILENET_V2:
        return []
    from safetensors.torch import load_file

    path = ensure_coral_mobilenet(cache_dir)
    trunk = {
        k.removeprefix(TRUNK_PREFIX): v
        for k, v in load_file(str(path)).items()
        if k.startswith(TRUNK_PREFIX)
    }
    net = model.backbone.net
    expected = net.state_dict()
    missing = sorted(set(expected) - set(trunk))
    unexpected = sorted(set(trunk) - set(expected))
    shapes = sorted(k for k in set(expected) & set(trunk) if expected[k].shape != trunk[k].shape)
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{path} does not fit the MobileNetV2 backbone (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, shape differs {shapes[:3]}); delete it to reconvert"
        )
    net.load_state_dict(trunk, strict=True)
    return sorted(trunk)
