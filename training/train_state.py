"""Resumable training state without pickles: tensors in safetensors, the rest in JSON.

Written atomically (temp folder, then rename), so a `kill -9` mid-write leaves the previous
state intact and resuming loses at most `checkpoint_every` steps.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STATE_DIR = "state"


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
