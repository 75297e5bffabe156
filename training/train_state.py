"""Resumable training state without pickles: tensors in safetensors, the rest in JSON.

Written atomically (temp folder, then rename), so a `kill -9` mid-write leaves the previous
state intact and resuming loses at most `checkpoint_every` steps. `save_run` and
`restore_run` say what a training run keeps; resuming refuses other settings or other data.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from saymap.engine.model import SaymapModel
from saymap.training.distributed import DistInfo, barrier
from saymap.training.recipe import Recipe, RecipeError, recipe_changes

log = logging.getLogger(__name__)
STATE_DIR = "state"


@dataclass(frozen=True)
class Progress:
    """Where a run stands: the next stage and step in it, and the model steps taken so far
    (they drive the learning-rate schedule across stages 1 and 3)."""

    stage_index: int = 0
    step: int = 0
    model_steps_done: int = 0


@dataclass
class RunParts:
    """What a training run saves and restores besides its progress."""

    model: SaymapModel
    banks: dict[str, torch.nn.Parameter]  # "sample" and "class" reference-bank entries
    dmols: torch.nn.Module | None
    optimizers: dict[str, torch.optim.Optimizer]  # "model" and "bank"


def _recipe_json(recipe: Recipe) -> dict[str, Any]:
    """The recipe as the state file holds it (JSON types), so saved and current compare."""
    return json.loads(json.dumps(recipe.to_dict()))


def save_run(
    out_dir: Path,
    parts: RunParts,
    teacher: SaymapModel | None,
    progress: Progress,
    recipe: Recipe,
    train_samples: int,
    dist: DistInfo,
) -> None:
    """Rank 0 writes the state; every rank waits for it, so none runs ahead of a save."""
    if not dist.is_main:
        barrier(dist)
        return
    model = parts.model
    modules = {
        "model": {
            k: v
            for k, v in model.state_dict().items()
            if not k.startswith("text_encoder.") or not model.config.freeze_text_encoder
        },
        "banks": dict(parts.banks),
    }
    if parts.dmols is not None:
        modules["dmols"] = parts.dmols.state_dict()
    if teacher is not None:
        modules["teacher"] = {
            k: v for k, v in teacher.state_dict().items() if k in modules["model"]
        }
    saved = {
        "stage_index": progress.stage_index,
        "step": progress.step,
        "model_steps_done": progress.model_steps_done,
        # What resuming checks it continues: the same settings, the same samples.
        "recipe": _recipe_json(recipe),
        "train_samples": train_samples,
    }
    save_state(out_dir, modules, parts.optimizers, saved)
    barrier(dist)


def restore_run(
    out_dir: Path, parts: RunParts, recipe: Recipe, train_samples: int
) -> tuple[Progress, SaymapModel | None]:
    """Loads the saved state into `parts`: where to go on, and the EMA teacher if stage 3
    had begun. A fresh Progress where out_dir holds no state."""
    state = load_state(out_dir)
    if state is None:
        return Progress(), None
    saved = state["progress"]
    check_resumable(out_dir, saved, recipe, train_samples)
    modules = state["modules"]
    parts.model.load_state_dict(modules["model"], strict=False)
    with torch.no_grad():
        for name, entries in parts.banks.items():
            entries.copy_(modules["banks"][name])
    if parts.dmols is not None:
        parts.dmols.load_state_dict(modules["dmols"])
    teacher = None
    if "teacher" in modules:
        teacher = copy.deepcopy(parts.model)
        teacher.load_state_dict(modules["teacher"], strict=False)
    for name, optimizer in parts.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    torch.set_rng_state(state["rng"]["torch"])
    log.info("resuming at stage %d step %d", saved["stage_index"], saved["step"])
    progress = Progress(saved["stage_index"], saved["step"], saved["model_steps_done"])
    return progress, teacher


def check_resumable(
    out_dir: Path, saved: dict[str, Any], recipe: Recipe, train_samples: int
) -> None:
    """Refuse to continue a run with other settings or other data: the result would be
    neither run. States saved before this check carry no recipe and are trusted."""
    problems = []
    if "recipe" in saved:
        problems += recipe_changes(saved["recipe"], _recipe_json(recipe))
    saved_samples = saved.get("train_samples")
    if saved_samples is not None and saved_samples != train_samples:
        problems.append(f"training samples: {saved_samples} → {train_samples}")
    if problems:
        raise RecipeError(
            f"{out_dir} holds a run started with other settings ("
            + "; ".join(problems)
            + "); resume it with its own recipe and data, or start afresh (--fresh, "
            "or another output folder)"
        )


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_state(
    out_dir: Path,
    modules: dict[str, dict[str, torch.Tensor]],
    optimizers: dict[str, torch.optim.Optimizer],
    progress: dict[str, Any],
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".state.", dir=out_dir))
    try:
        for name, state in modules.items():
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in state.items()},
                str(tmp / f"{name}.safetensors"),
            )
        meta: dict[str, Any] = {"progress": progress, "optimizers": {}}
        for name, optimizer in optimizers.items():
            tensors, opt_meta = _flatten_optimizer(optimizer)
            save_file(tensors, str(tmp / f"optimizer-{name}.safetensors"))
            meta["optimizers"][name] = opt_meta
        rng = {"torch": torch.get_rng_state()}
        save_file(rng, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))
        final = out_dir / STATE_DIR
        old = out_dir / ".state.old"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_state(out_dir: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none to resume from."""
    folder = out_dir / STATE_DIR
    if not (folder / "state.json").is_file():
        old = out_dir / ".state.old"  # killed between the two renames
        if (old / "state.json").is_file():
            old.rename(folder)
        else:
            return None
    meta = json.loads((folder / "state.json").read_text())
    modules = {
        p.stem: load_file(str(p))
        for p in folder.glob("*.safetensors")
        if p.stem != "rng" and not p.stem.startswith("optimizer-")
    }
    optimizers = {
        name: _unflatten_optimizer(
            load_file(str(folder / f"optimizer-{name}.safetensors")), opt_meta
        )
        for name, opt_meta in meta["optimizers"].items()
    }
    rng = load_file(str(folder / "rng.safetensors"))
    return {"progress": meta["progress"], "modules": modules, "optimizers": optimizers, "rng": rng}
