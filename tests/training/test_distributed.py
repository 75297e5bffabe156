"""Who a process is under torchrun, shared by training (DDP) and the collection job: one
module in the engine, which training re-exports unchanged. The two-process runs themselves
are tests/training/test_trainer.py and tests/engine/test_collection_torchrun.py."""

from __future__ import annotations

import pytest
import torch

from saymap.engine import distributed as engine_distributed
from saymap.engine.distributed import DistInfo, from_environment, init_distributed, rank_device
from saymap.training import distributed as training_distributed


def test_training_uses_the_engines_process_group_code() -> None:
    for name in ("DistInfo", "init_distributed", "barrier"):
        assert getattr(training_distributed, name) is getattr(engine_distributed, name)


def test_the_environment_torchrun_sets_names_the_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert from_environment() == DistInfo() and init_distributed() == DistInfo()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = from_environment()
    assert (info.rank, info.world, info.local_rank, info.enabled, info.is_main) == (
        3, 4, 1, True, False,
    )  # fmt: skip


def test_auto_under_torchrun_is_the_ranks_own_gpu_where_there_is_one() -> None:
    ranked = DistInfo(rank=1, world=2, local_rank=1)
    assert rank_device("cpu", ranked) == "cpu"
    assert rank_device("cuda:0", ranked) == "cuda:0"  # asked for by name: kept
    assert rank_device("auto", DistInfo()) == "auto"  # one process: choose_device decides
    expected = "cuda:1" if torch.cuda.is_available() else "auto"
    assert rank_device("auto", ranked) == expected
