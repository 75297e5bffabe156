"""What the routers share: the job manager, the warm models, the devices found at start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from saymap.engine.server.jobs import JobManager
from saymap.engine.server.models_cache import ModelCache
from saymap.engine.server.settings import Settings


@dataclass
class EngineState:
    settings: Settings
    jobs: JobManager
    models: ModelCache
    devices: list[dict[str, Any]]
    auto_device: dict[str, Any]
    torch_version: str
    # Read from the registry at start and on every /v1/models call, so health (polled
    # often) answers from memory without touching the disk.
    active_model: str


async def get_engine(request: Request) -> EngineState:
    """A dependency: the state the app's lifespan built (async: no thread-pool hop)."""
    return request.app.state.engine
