"""GET /v1/health: the one call that needs no token (clients use it to find a live engine)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from saymap.engine.server.schemas import DeviceInfo, Health
from saymap.engine.server.settings import API_VERSION
from saymap.engine.server.state import EngineState, get_engine
from saymap.engine.version import __version__

router = APIRouter(tags=["health"])


@router.get("/v1/health", response_model=Health)
async def health(engine: Annotated[EngineState, Depends(get_engine)]) -> Health:
    return Health(
        engine_version=__version__,
        api_version=API_VERSION,
        torch_version=engine.torch_version,
        device=DeviceInfo(**engine.auto_device),
        devices=[DeviceInfo(**d) for d in engine.devices],
        models_loaded=engine.models.loaded(),
        active_model=engine.active_model,
    )
