"""Data-parallel training under `torchrun` (DDP), with nothing to change in the recipe.

Each rank draws its own batches (the rank joins the batch seed), gradients are averaged
(DDP for the model, an explicit all-reduce for the reference banks and the D-MOLS heads),
and only rank 0 writes state, models and events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Joins the process group torchrun describes in the environment; single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


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


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
