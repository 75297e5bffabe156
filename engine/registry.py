"""The model registry: which checkpoints exist, which one is active, and adding new ones.

A model is a folder named after it, holding config.json + model.safetensors +
model_card.json. Shipped models live in `SHIPPED_MODELS/<name>/`, the user's own in
`user_models_dir()/<name>/`; the active model's name is one line in `<data_dir>/active_model`.
No torch here: the server lists models without paying for it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saymap.engine import paths
from saymap.engine.errors import CheckpointError, ModelNotFoundError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
# A trained model's validation chips (a chip folder `saymap eval` reads) and predictions.
VALIDATION_DIR = "validation"
# A folder name on every OS, no path separators, no leading dot (temp folders start with one).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the format's own limit


@dataclass(frozen=True)
class ModelEntry:
    """One registered model, as `GET /v1/models` lists it."""

    name: str
    path: Path
    config_name: str
    card: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    shipped: bool = False
    config: dict[str, Any] = field(default_factory=dict, repr=False)


def check_name(name: str) -> str:
    """Refuse names that are not a plain folder name (no `..`, no `/`, no hidden folders)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name.endswith("."):
        raise CheckpointError(
            f"model name {name!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} must hold a JSON object, found {type(value).__name__}")
    return value


def _check_safetensors(path: Path) -> None:
    """Read only the header: enough to refuse a pickle or a truncated file renamed .safetensors."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise CheckpointError(f"{path} is too short to be a safetensors file")
            (size,) = struct.unpack("<Q", raw)
            if size == 0 or size > _MAX_SAFETENSORS_HEADER:
                raise CheckpointError(f"{path} is not a safetensors file (bad header size)")
            header = json.loads(fh.read(size))
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a safetensors file (unreadable header)") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors file (header is not an object)")


def read_entry(folder: Path, *, shipped: bool, name: str | None = None) -> ModelEntry:
    """Check a model folder has its three files and describe it; raises CheckpointError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist")
    for filename in MODEL_FILES:
        if not (folder / filename).is_file():
            raise CheckpointError(f"model folder {folder} has no {filename}")
    config = _read_json(folder / CONFIG_FILE)
    card = _read_json(folder / CARD_FILE)
    _check_safetensors(folder / WEIGHTS_FILE)
    classes = card.get("classes", [])
    if not isinstance(classes, list):
        classes = []
    return ModelEntry(
        name=name or folder.name,
        path=folder.resolve(),
        config_name=str(config.get("name", "")),
        card=card,
        classes=[str(c) for c in classes],
        shipped=shipped,
        config=config,
    )


def _roots() -> list[tuple[Path, bool]]:
    """Where models are looked up, in precedence order (the user's first, as the loader does)."""
    return [(paths.user_models_dir(), False), (paths.SHIPPED_MODELS, True)]


def list_models() -> list[ModelEntry]:
    """Every valid model folder, shipped ones first; broken folders are logged and skipped."""
    found: dict[str, ModelEntry] = {}
    for root, shipped in reversed(_roots()):
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if not folder.is_dir() or not NAME_PATTERN.fullmatch(folder.name):
                continue
            try:
                found[folder.name] = read_entry(folder, shipped=shipped)
            except CheckpointError as exc:
                log.warning("skipping model folder %s: %s", folder, exc)
    return sorted(found.values(), key=lambda e: (not e.shipped, e.name))


def find(name: str) -> ModelEntry:
    """The registered model called `name`; ModelNotFoundError names the ones that exist."""
    check_name(name)
    for root, shipped in _roots():
        folder = root / name
        if folder.is_dir():
            return read_entry(folder, shipped=shipped)
    known = ", ".join(e.name for e in list_models()) or "none"
    raise ModelNotFoundError(f"no model named {name!r}; registered models: {known}")


def resolve(name: str) -> Path:
    """The folder of the registered model `name`."""
    return find(name).path


def resolve_checkpoint(name_or_path: str | os.PathLike[str]) -> Path:
    """A checkpoint folder given by path, or a registered model's (the user's models, then
    the shipped ones): the one place a model name becomes a folder."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    try:
        return resolve(str(name_or_path))
    except (ModelNotFoundError, CheckpointError) as exc:
        raise CheckpointError(
            f"no checkpoint folder or model named {str(name_or_path)!r} ({exc})"
        ) from exc


def exists(name: str) -> bool:
    check_name(name)
    return any((root / name).is_dir() for root, _ in _roots())


def _active_file() -> Path:
    return paths.data_dir() / "active_model"


def active_name() -> str:
    """The active model's name; the shipped default when none was chosen or it has gone."""
    try:
        name = _active_file().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return DEFAULT_MODEL
    if name and NAME_PATTERN.fullmatch(name) and exists(name):
        return name
    if name:
        log.warning("active model %r is no longer registered; using %r", name, DEFAULT_MODEL)
    return DEFAULT_MODEL


def set_active(name: str) -> ModelEntry:
    """Make a registered model the active one (written atomically)."""
    entry = find(name)
    target = _active_file()
    fd, tmp = tempfile.mkstemp(prefix=".active_model.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(entry.name + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return entry


def register(folder: str | os.PathLike[str], name: str) -> ModelEntry:
    """Copy a checked model folder into the user's models under `name`, all or nothing.

    The files go to a hidden temp folder beside the destination, which is renamed into place
    once complete: a crash leaves a hidden folder that listings ignore, never a half model.
    """
    check_name(name)
    source = Path(folder)
    read_entry(source, shipped=False)  # refuse a broken folder before copying anything
    if exists(name):
        raise CheckpointError(f"a model named {name!r} is already registered; choose another name")
    root = paths.user_models_dir()
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        for filename in MODEL_FILES:
            shutil.copyfile(source / filename, tmp / filename)
        if (source / VALIDATION_DIR).is_dir():  # the chips it was scored on, and predictions
            shutil.copytree(source / VALIDATION_DIR, tmp / VALIDATION_DIR)
        read_entry(tmp, shipped=False, name=name)  # the copy, not only the source, is whole
        try:
            os.rename(tmp, root / name)  # fails if the name appeared meanwhile
        except OSError as exc:
            raise CheckpointError(f"could not register {name!r}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read_entry(root / name, shipped=False)
