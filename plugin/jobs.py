"""Follow one engine job to its end: post it, poll it, cancel it when asked.

Shared by the toolbar's QgsTask and the Processing algorithm; standard library only, so the
caller supplies progress, cancel and sleep hooks.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .engine_client import EngineClient, JobInfo, SegmentRequest
from .errors import JobCancelled, JobFailed

POLL_S = 0.3
CANCEL_WAIT_S = 60.0


def follow_job(
    client: EngineClient,
    job: JobInfo,
    on_progress: Callable[[JobInfo], None],
    is_cancelled: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> JobInfo:
    """Poll until the job ends; returns the finished job or raises JobFailed/JobCancelled.

    On cancel the job is cancelled on the engine and followed until the worker has stopped,
    so the caller knows no file is still being written.
    """
    last = job
    while not last.terminal:
        if is_cancelled():
            cancel_job(client, last.id, sleep)
            raise JobCancelled("Cancelled; no layer was added.")
        sleep(POLL_S)
        last = client.job(last.id)
        on_progress(last)
    if last.state == "failed":
        raise JobFailed(last.error or last.message or "the engine reported a failure")
    if last.state == "cancelled":
        raise JobCancelled("The job was cancelled on the engine.")
    return last


def cancel_job(
    client: EngineClient, job_id: str, sleep: Callable[[float], None] = time.sleep
) -> JobInfo:
    """Cancel the job, then wait (bounded) until the engine says it stopped."""
    info = client.cancel(job_id)
    deadline = time.monotonic() + CANCEL_WAIT_S
    while not info.terminal and time.monotonic() < deadline:
        sleep(POLL_S)
        info = client.job(job_id)
    return info


def follow_segment(
    client: EngineClient,
    request: SegmentRequest,
    on_progress: Callable[[JobInfo], None],
    is_cancelled: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> JobInfo:
    """POST /v1/segment and follow the job to its end."""
    job = client.segment(request)
    on_progress(job)
    return follow_job(client, job, on_progress, is_cancelled, sleep)
