"""Pick the device inference runs on, and say why: CUDA (bf16 autocast) → MPS → CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from saymap.engine.errors import DeviceError

AUTO = "auto"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_device(requested: str = AUTO) -> tuple[torch.device, str]:
    """The device to run on and a sentence saying why, for logs and results.

    "auto" takes the best one present; "cpu", "cuda", "cuda:N" and "mps" are checked and
    raise DeviceError when the machine does not have them (never a silent fallback).
    """
    text = (requested or AUTO).strip().lower()
    if text == AUTO:
        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            return torch.device("cuda", 0), f"auto: CUDA is available ({name}), bf16 autocast"
        if _mps_available():
            return torch.device("mps"), "auto: no CUDA; Apple MPS is available"
        return torch.device("cpu"), "auto: no CUDA or MPS on this machine"
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise DeviceError(
            f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps"
        ) from exc
    if device.type == "cpu":
        return device, "requested cpu"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {requested!r} requested but CUDA is not available here")
        index = 0 if device.index is None else device.index
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(
                f"device {requested!r} requested but this machine has {count} CUDA device(s)"
            )
        name = torch.cuda.get_device_name(index)
        return torch.device("cuda", index), f"requested {text} ({name}), bf16 autocast"
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError(f"device {requested!r} requested but MPS is not available here")
        return device, "requested mps"
    raise DeviceError(f"unsupported device {requested!r}; use auto, cpu, cuda, cuda:N or mps")


@contextlib.contextmanager
def autocast_for(device: torch.device) -> Iterator[None]:
    """bf16 autocast on CUDA (half the memory, tensor cores); full precision elsewhere."""
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
