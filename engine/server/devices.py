"""What the health endpoint says about devices: every one present, with its memory."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from saymap.engine.device import choose_device


def _cpu_memory_mb() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    except (ValueError, OSError, AttributeError):
        return None  # not a POSIX system (Windows); the number is informative only


def _cpu_name() -> str:
    """The CPU's model name where the OS tells it (Linux), else the architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def list_devices() -> list[dict[str, Any]]:
    """CPU always; each CUDA device with its total memory; MPS when present."""

    cpu_name = _cpu_name()
    devices: list[dict[str, Any]] = [
        {
            "type": "cpu",
            "name": f"{cpu_name} ({os.cpu_count()} logical cores)",
            "memory_total_mb": _cpu_memory_mb(),
            "reason": "always available",
        }
    ]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            devices.append(
                {
                    "type": "cuda",
                    "name": f"cuda:{index} {props.name}",
                    "memory_total_mb": int(props.total_memory // (1 << 20)),
                    "reason": "CUDA is available",
                }
            )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(
            {"type": "mps", "name": "Apple MPS", "memory_total_mb": None, "reason": "available"}
        )
    return devices


def auto_device(devices: list[dict[str, Any]]) -> dict[str, Any]:
    """The entry 'auto' picks, with the reason `choose_device` gives."""

    device, reason = choose_device("auto")
    for entry in devices:
        index = entry["name"].split()[0] if entry["type"] == "cuda" else None
        if entry["type"] == device.type and (index is None or index == str(device)):
            return {**entry, "reason": reason}
    return {"type": device.type, "name": str(device), "memory_total_mb": None, "reason": reason}
