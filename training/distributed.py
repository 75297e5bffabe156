"""Data-parallel training under `torchrun` (DDP), with nothing to change in the recipe.

Each rank draws its own batches (the rank joins the batch seed), gradients are averaged
(DDP for the model, an explicit all-reduce for the reference banks and the D-MOLS heads),
and only rank 0 writes state, models and events. Who a process is and the process group
live in the engine (engine/distributed.py), which inference shares.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from saymap.engine.distributed import DistInfo, barrier, init_distributed

__all__ = ["DistInfo", "average_gradients", "barrier", "init_distributed", "wrap_model"]


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def average_gradients(params: list[nn.Parameter], info: DistInfo) -> None:
    if not info.enabled:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(info.world)
