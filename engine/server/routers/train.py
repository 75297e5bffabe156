"""POST /v1/train: a dataset and a recipe → a job that ends by registering a model.
POST /v1/train/preview: what such a job would train and validate on, answered at once.
POST /v1/train/suggest: sentences about the request's label features, answered at once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from saymap.engine.server.auth import verify_token
from saymap.engine.server.preflight import check_train, check_train_preview
from saymap.engine.server.routers import errors
from saymap.engine.server.routers.jobs import job_info
from saymap.engine.server.schemas import (
    JobInfo,
    TrainPreview,
    TrainPreviewRequest,
    TrainRequest,
    TrainSuggestions,
    TrainSuggestRequest,
)
from saymap.engine.server.state import EngineState, get_engine

router = APIRouter(tags=["jobs"], dependencies=[Depends(verify_token)], responses=errors(401))


@router.post(
    "/v1/train",
    response_model=JobInfo,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(400, 409, 413, 422),
)
def train(body: TrainRequest, engine: Annotated[EngineState, Depends(get_engine)]) -> JobInfo:
    """Queue a fine-tuning run; the model is registered under `name` when it succeeds."""
    return job_info(engine.jobs.submit("train", check_train(body)))


@router.post("/v1/train/preview", response_model=TrainPreview, responses=errors(400, 413, 422))
def train_preview(body: TrainPreviewRequest) -> TrainPreview:
    """Which sentences and chips a train job with this dataset and recipe would train and
    validate on (the trainer's own split, no pixel read), and why it would fail, if it would."""
    from saymap.engine.server.train_preview import preview_training

    return TrainPreview.model_validate(preview_training(check_train_preview(body)))


@router.post("/v1/train/suggest", response_model=TrainSuggestions, responses=errors(400, 413, 422))
def train_suggest(body: TrainSuggestRequest) -> TrainSuggestions:
    """Sentences computed from the label polygons, each true of exactly one feature on the
    chip a train job with this dataset and recipe would cut for it (none about a feature the
    request's sentences describe, or whose chip would validate or touch a hold-out)."""
    from saymap.engine.server.train_suggest import suggest_for_training

    check_train_preview(body)  # a suggestion reads what a preview reads
    return TrainSuggestions.model_validate(suggest_for_training(body))
