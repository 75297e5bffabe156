"""The FastAPI app: creates it, includes the routers, and turns refusals into 4xx sentences."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from saymap.engine import registry
from saymap.engine.errors import ModelNotFoundError, SaymapError
from saymap.engine.server.jobs import JobManager
from saymap.engine.server.models_cache import ModelCache
from saymap.engine.server.routers import health, jobs, models, segment, train
from saymap.engine.server.segment_job import run_segment
from saymap.engine.server.settings import API_VERSION, Settings, get_settings
from saymap.engine.server.state import EngineState
from saymap.engine.server.store import JobStore
from saymap.engine.server.training import run_training
from saymap.engine.version import __version__

log = logging.getLogger(__name__)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, whether or not they say their length."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        # Read the body now (it is small by rule), then replay it to the app.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
        body = b"".join(chunks)
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body too large: the limit is {self.limit} bytes"
        response = JSONResponse({"detail": detail}, status.HTTP_413_CONTENT_TOO_LARGE)
        await response(scope, receive, send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if then is not None:
            return await then()  # after the body: wait for the client to disconnect
        return {"type": "http.disconnect"}

    return receive


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = len(exc.errors()) - 5
    return "invalid request: " + "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _validation_detail(exc)}, status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _on_saymap_error(request: Request, exc: Exception) -> JSONResponse:
    code = 404 if isinstance(exc, ModelNotFoundError) else status.HTTP_400_BAD_REQUEST
    return JSONResponse({"detail": str(exc)}, code)


def _engine_state(settings: Settings, preload: bool) -> EngineState:
    import torch

    from saymap.engine.server.devices import auto_device, list_devices

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cache = ModelCache()
    runners = {
        "segment": partial(run_segment, models=cache),
        "train": run_training,
    }
    manager = JobManager(
        JobStore(settings.jobs_db),
        runners,
        progress_write_interval_s=settings.progress_write_interval_s,
    )
    devices = list_devices()
    state = EngineState(
        settings=settings,
        jobs=manager,
        models=cache,
        devices=devices,
        auto_device=auto_device(devices),
        torch_version=str(torch.__version__),
        active_model=registry.active_name(),
    )
    recovered = manager.start()
    if recovered:
        log.warning("%d unfinished job(s) marked failed: engine restarted", len(recovered))
    if preload:
        from saymap.engine.server.segment_job import preload_active_model

        preload_active_model(cache)
    return state


def create_app(settings: Settings | None = None, *, preload: bool = False) -> FastAPI:
    """The engine app; `settings` overrides the cached environment settings (tests, serve)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = _engine_state(settings, preload)
        app.state.engine = state
        try:
            yield
        finally:
            state.jobs.stop()
            state.jobs.close()

    app = FastAPI(
        title="SayMap engine",
        version=__version__,
        summary=f"Local API v{API_VERSION}: segment rasters from a sentence, as jobs.",
        lifespan=lifespan,
    )
    app.state.settings = settings  # what verify_token checks against
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(SaymapError, _on_saymap_error)
    for module in (health, models, segment, train, jobs):
        app.include_router(module.router)
    return app
