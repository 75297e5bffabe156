"""The model registry on real folders: listing, the active model, all-or-nothing registering."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest

from saymap.engine import registry
from saymap.engine.errors import CheckpointError, ModelNotFoundError


def _model(folder: Path, name: str = "tiny", classes: list[str] | None = None) -> Path:
    """A well-formed model folder (a one-tensor safetensors file is enough for the registry)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"name": name}))
    (folder / "model_card.json").write_text(json.dumps({"classes": classes or ["building"]}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    return folder


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAYMAP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(registry.paths, "SHIPPED_MODELS", tmp_path / "shipped")
    _model(tmp_path / "shipped" / "default", classes=["car"])
    return tmp_path / "data"


def test_lists_shipped_and_user_models(data_dir: Path, tmp_path: Path) -> None:
    registry.register(_model(tmp_path / "src"), "roofs-v1")
    (data_dir / "models" / "broken").mkdir()  # no files: skipped, not fatal
    entries = {e.name: e for e in registry.list_models()}
    assert set(entries) == {"default", "roofs-v1"}
    assert entries["default"].shipped and entries["default"].classes == ["car"]
    assert not entries["roofs-v1"].shipped
    assert entries["roofs-v1"].path == (data_dir / "models" / "roofs-v1").resolve()


def test_active_model_defaults_and_persists(data_dir: Path, tmp_path: Path) -> None:
    assert registry.active_name() == "default"
    registry.register(_model(tmp_path / "src"), "mine")
    registry.set_active("mine")
    assert (data_dir / "active_model").read_text().strip() == "mine"
    assert registry.active_name() == "mine"
    with pytest.raises(ModelNotFoundError, match="mine"):
        registry.set_active("gone")
    assert registry.active_name() == "mine"


def test_register_refuses_taken_and_unsafe_names(data_dir: Path, tmp_path: Path) -> None:
    source = _model(tmp_path / "src")
    with pytest.raises(CheckpointError, match="already registered"):
        registry.register(source, "default")
    for bad in ("../up", "a/b", ".hidden", "", "x" * 65, "trailing."):
        with pytest.raises(CheckpointError, match="not allowed"):
            registry.register(source, bad)
    assert not (data_dir / "models").exists() or not any((data_dir / "models").iterdir())


def test_register_is_all_or_nothing(data_dir: Path, tmp_path: Path) -> None:
    incomplete = _model(tmp_path / "incomplete")
    (incomplete / "model_card.json").unlink()
    with pytest.raises(CheckpointError, match=r"model_card\.json"):
        registry.register(incomplete, "half")
    pickled = _model(tmp_path / "pickled")
    (pickled / "model.safetensors").write_bytes(pickle.dumps({"w": [1.0]}))
    with pytest.raises(CheckpointError, match="safetensors"):
        registry.register(pickled, "pickled")
    models = data_dir / "models"
    assert not models.exists() or os.listdir(models) == []  # no half model, no temp folder
    assert not registry.exists("half") and not registry.exists("pickled")


def test_unknown_model_names_the_known_ones(data_dir: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="default"):
        registry.resolve("nope")
    assert isinstance(ModelNotFoundError("x"), LookupError)
