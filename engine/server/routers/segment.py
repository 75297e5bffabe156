"""POST /v1/segment: check the request now, run it as a job later."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from saymap.engine.server.auth import verify_token
from saymap.engine.server.preflight import check_segment, same_path
from saymap.engine.server.routers import errors
from saymap.engine.server.routers.jobs import job_info
from saymap.engine.server.schemas import JobInfo, SegmentRequest
from saymap.engine.server.state import EngineState, get_engine

router = APIRouter(tags=["jobs"], dependencies=[Depends(verify_token)], responses=errors(401))


@router.post(
    "/v1/segment",
    response_model=JobInfo,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(400, 409, 413, 422),
)
def segment(body: SegmentRequest, engine: Annotated[EngineState, Depends(get_engine)]) -> JobInfo:
    """Queue a segmentation of `raster` by each prompt into the GeoPackage `output`."""
    request, plan = check_segment(body)
    for job in engine.jobs.unfinished():
        if job.kind == "segment" and same_path(job.request["output"], body.output):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"job {job.id} is already writing {body.output}; wait for it or cancel it",
            )
    return job_info(engine.jobs.submit("segment", request, prepared=plan))
