"""GET /v1/jobs…: job state for any number of readers, an SSE stream; POST …/cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import StreamingResponse

from saymap.engine.server.auth import verify_token
from saymap.engine.server.jobs import JobManager
from saymap.engine.server.routers import errors
from saymap.engine.server.schemas import JobInfo, JobList
from saymap.engine.server.state import EngineState, get_engine
from saymap.engine.server.store import JobRecord

router = APIRouter(tags=["jobs"], dependencies=[Depends(verify_token)], responses=errors(401))

POLL_S = 0.2  # how often an event stream looks for changes (memory only, no I/O)
KEEPALIVE_S = 15.0  # a comment line now and then keeps proxies and clients from timing out


def _event_schema(name: str, data: dict) -> dict:
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
        },
    }


# One server-sent event of the stream (what an SSE client reads each time), its data JSON.
EVENTS_SCHEMA = {
    "oneOf": [
        _event_schema("progress", {"$ref": "#/components/schemas/JobInfo"}),
        _event_schema("metrics", {"type": "object", "additionalProperties": {"type": "number"}}),
    ]
}


def job_info(record: JobRecord) -> JobInfo:
    return JobInfo.model_validate(record.public())


def _not_found(job_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {job_id!r}")


@router.get("/v1/jobs", response_model=JobList, responses=errors(422))
async def list_jobs(
    engine: Annotated[EngineState, Depends(get_engine)],
    limit: Annotated[
        int, Query(ge=1, le=1000, description="newest first, at most this many")
    ] = 100,
) -> JobList:
    return JobList(jobs=[job_info(r) for r in engine.jobs.list(limit)])


@router.get("/v1/jobs/{job_id}", response_model=JobInfo, responses=errors(404))
async def get_job(job_id: str, engine: Annotated[EngineState, Depends(get_engine)]) -> JobInfo:
    record = engine.jobs.get(job_id)
    if record is None:
        raise _not_found(job_id)
    return job_info(record)


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobInfo, responses=errors(404))
def cancel_job(job_id: str, engine: Annotated[EngineState, Depends(get_engine)]) -> JobInfo:
    """Queued: cancelled at once. Running: stops after the current batch. Finished: as is.

    The job stays in the history (GET answers for it): cancelling is not deleting."""
    record = engine.jobs.cancel(job_id)
    if record is None:
        raise _not_found(job_id)
    return job_info(record)


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


async def _stream(jobs: JobManager, job_id: str) -> AsyncIterator[str]:
    seen_version, seen_metrics, quiet = -1, 0, 0.0
    while True:
        snap = jobs.snapshot(job_id, seen_metrics)
        if snap is None:
            return
        record, version, metrics = snap
        for values in metrics:
            yield _event("metrics", json.dumps(values))
        seen_metrics += len(metrics)
        if version != seen_version:
            seen_version, quiet = version, 0.0
            yield _event("progress", job_info(record).model_dump_json())
            if record.terminal:
                return
        elif quiet >= KEEPALIVE_S:
            quiet = 0.0
            yield ": keepalive\n\n"
        await asyncio.sleep(POLL_S)
        quiet += POLL_S


@router.get(
    "/v1/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        **errors(404),
        200: {
            "description": "`event: progress` (data: JobInfo) on each change and, for training, "
            "`event: metrics` (data: {step, loss, lr, val_iou}); ends after a final state.",
            "content": {"text/event-stream": {"schema": EVENTS_SCHEMA}},
        },
    },
)
async def job_events(
    job_id: str, engine: Annotated[EngineState, Depends(get_engine)]
) -> StreamingResponse:
    if engine.jobs.get(job_id) is None:
        raise _not_found(job_id)
    return StreamingResponse(
        _stream(engine.jobs, job_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
