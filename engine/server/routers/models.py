"""GET /v1/models and PUT /v1/models/active: the registered checkpoints and the active one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from saymap.engine import registry
from saymap.engine.errors import ModelNotFoundError
from saymap.engine.server.auth import verify_token
from saymap.engine.server.routers import errors
from saymap.engine.server.schemas import ActiveModelRequest, ModelInfo, ModelList
from saymap.engine.server.state import EngineState, get_engine

router = APIRouter(tags=["models"], dependencies=[Depends(verify_token)], responses=errors(401))


def _model_list(engine: EngineState) -> ModelList:
    engine.active_model = registry.active_name()
    return ModelList(
        active=engine.active_model,
        models=[
            ModelInfo(
                name=e.name,
                path=str(e.path),
                config_name=e.config_name,
                card=e.card,
                classes=e.classes,
                shipped=e.shipped,
            )
            for e in registry.list_models()
        ],
    )


@router.get("/v1/models", response_model=ModelList)
def list_models(engine: Annotated[EngineState, Depends(get_engine)]) -> ModelList:
    return _model_list(engine)


@router.put("/v1/models/active", response_model=ModelList, responses=errors(400, 404, 413, 422))
def set_active(
    body: ActiveModelRequest, engine: Annotated[EngineState, Depends(get_engine)]
) -> ModelList:
    try:
        registry.set_active(body.name)
    except ModelNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return _model_list(engine)
