"""Processes under `torchrun`: who this process is, the process group, and its device.

Training (DDP) and the collection job (a deterministic share of units per rank) both join
the group torchrun describes in the environment; one process is simply world size 1, so no
caller has a second code path. On a GPU machine ranks use NCCL, each on cuda:LOCAL_RANK;
on CPU (or when the device asked for is the CPU) they use gloo. Torch is imported only
when there is a group to join, so planning a job (and refusing bad input) never loads it.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta


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


def from_environment() -> DistInfo:
    """What torchrun put in the environment (rank 0 of 1 when it did not start us)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def rank_device(requested: str, info: DistInfo) -> str:
    """The device option a rank runs on: "auto" (or a bare "cuda") under torchrun on a GPU
    machine means this rank's own GPU, cuda:LOCAL_RANK; anything else is kept as given."""
    text = (requested or "auto").strip().lower()
    if not info.enabled or text not in ("auto", "cuda"):
        return requested
    import torch

    if torch.cuda.is_available():
        return f"cuda:{info.local_rank}"
    return requested


def init_distributed(device: str = "auto", timeout: timedelta | None = None) -> DistInfo:
    """Joins the process group torchrun describes in the environment; single process
    otherwise. NCCL with this rank's GPU selected, or gloo when there is no GPU or the
    ranks were asked to run on the CPU. `timeout` bounds every barrier (torch's default
    when None): a job whose ranks finish far apart needs a long one."""
    info = from_environment()
    if not info.enabled:
        return info
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return info
    on_cpu = rank_device(device, info).strip().lower().startswith("cpu")
    backend = "nccl" if torch.cuda.is_available() and not on_cpu else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    extra = {"timeout": timeout} if timeout is not None else {}
    dist.init_process_group(backend=backend, **extra)
    return info


def barrier(info: DistInfo, poll_s: float = 0.1) -> None:
    """Wait for every rank. Polled from Python, so a signal (torchrun's SIGTERM when another
    rank died, Ctrl-C) ends the wait at once instead of when the barrier times out."""
    if not info.enabled:
        return
    import torch.distributed as dist

    work = dist.barrier(async_op=True)
    while not work.is_completed():
        time.sleep(poll_s)
    work.wait()


def finish_distributed() -> None:
    """Leave the process group (a clean exit, without torch's warning about it)."""
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
