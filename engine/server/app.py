"""The FastAPI app: creates it, includes the routers, and turns refusals into 4xx sentences."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import torch
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from saymap.engine import registry
from saymap.engine.errors import ModelNotFoundError, SaymapError
from saymap.engine.server.auth import request_refusal, verify_token
from saymap.engine.server.devices import auto_device, list_devices
from saymap.engine.server.jobs import JobManager
from saymap.engine.server.models_cache import ModelCache
from saymap.engine.server.routers import health, jobs, models, segment, train
from saymap.engine.server.segment_job import preload_active_model, run_segment
from saymap.engine.server.settings import API_VERSION, Settings, get_settings, is_loopback
from saymap.engine.server.state import EngineState
from saymap.engine.server.store import JobStore
from saymap.engine.server.train_job import run_training
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


class LoopbackHost:
    """Refuse requests whose Host header is not this engine's loopback name and port.

    A web page can rebind its own domain name to 127.0.0.1 and read what the engine answers
    without a token (/v1/health); the browser still sends the page's name as Host, so a
    loopback engine answers only to 127.0.0.1, localhost, [::1] (or the address it listens
    on), with its port. An engine started with --allow-remote is reached by other names.
    """

    NAMES = ("127.0.0.1", "localhost", "[::1]")

    def __init__(self, app: ASGIApp, listen_host: str) -> None:
        self.app = app
        self.enabled = is_loopback(listen_host)
        own = f"[{listen_host}]" if ":" in listen_host else listen_host
        self.names = {*self.NAMES, own.lower()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.enabled and not self._allowed(scope):
            detail = "this engine answers only to a loopback Host (127.0.0.1, localhost, [::1])"
            response = JSONResponse({"detail": detail}, status.HTTP_400_BAD_REQUEST)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        server = scope.get("server")
        if server is None:  # not a socket: nothing a browser could reach
            return True
        name, colon, port = host.rpartition(":")
        if not colon or name == "" or host.endswith("]"):  # no port given: port 80 only
            name, port = host, "80"
        return name in self.names and port == str(server[1])


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if then is not None:
            return await then()  # after the body: wait for the client to disconnect
        return {"type": "http.disconnect"}

    return receive


def _validation_detail(exc: RequestValidationError) -> str:
    """One sentence for a refused body. A rule of the engine's own (the prompt rule,
    engine/prompt.py) raises a SaymapError: its sentence is passed on as it is, the same
    words the command line prints and the plugin shows."""
    own = [e.get("ctx", {}).get("error") for e in exc.errors()]
    if own and all(isinstance(error, SaymapError) for error in own):
        return "; ".join(dict.fromkeys(str(error) for error in own))
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = len(exc.errors()) - 5
    return "invalid request: " + "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _needs_token(request: Request) -> bool:
    route = request.scope.get("route")
    return isinstance(route, APIRoute) and any(
        d.dependency is verify_token for d in route.dependencies
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI parses the body before it runs the dependencies: without this, a malformed
    # body without a token got 422 and told an unauthenticated caller about the schema.
    if _needs_token(request) and (problem := await request_refusal(request)) is not None:
        return JSONResponse(
            {"detail": problem},
            status.HTTP_401_UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return JSONResponse({"detail": _validation_detail(exc)}, status.HTTP_422_UNPROCESSABLE_CONTENT)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI document gives the request's path (Starlette's 405 names only
    the first matching route's); none when the path is not an API operation."""
    methods: set[str] = set()
    for template, item in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in item}
    return sorted(methods)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != status.HTTP_405_METHOD_NOT_ALLOWED:
        return await http_exception_handler(request, exc)  # type: ignore[return-value]
    allowed = _allowed_methods(request) or sorted((exc.headers or {}).get("Allow", "").split(", "))
    return JSONResponse(
        {"detail": f"{request.method} is not allowed here; use {', '.join(allowed)}"},
        status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": ", ".join(allowed)},
    )


async def _on_saymap_error(request: Request, exc: Exception) -> JSONResponse:
    code = 404 if isinstance(exc, ModelNotFoundError) else status.HTTP_400_BAD_REQUEST
    return JSONResponse({"detail": str(exc)}, code)


def _engine_state(settings: Settings, preload: bool) -> EngineState:
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
    app.add_middleware(LoopbackHost, listen_host=settings.host)  # added last: runs first
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(SaymapError, _on_saymap_error)
    for module in (health, models, segment, train, jobs):
        app.include_router(module.router)
    return app
