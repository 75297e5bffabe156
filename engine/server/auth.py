"""The bearer-token dependency every router except health attaches."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from saymap.engine.server.settings import Settings

# auto_error=False: we answer 401 ourselves (HTTPBearer's own answer varies between versions).
_bearer = HTTPBearer(
    auto_error=False,
    description="The token `saymap serve` writes to <data_dir>/token at each start.",
)


def refusal(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """Why these credentials are refused (a sentence), or None when they carry the token."""
    if credentials is None:
        return (
            "missing token: send 'Authorization: Bearer <token>' with the token from "
            f"{settings.token_path}"
        )
    given = credentials.credentials.encode("utf-8", "surrogatepass")
    if not settings.token or not secrets.compare_digest(given, settings.token.encode("utf-8")):
        return f"wrong token: the engine writes a new one to {settings.token_path} at each start"
    return None


async def request_refusal(request: Request) -> str | None:
    """`refusal` for a request, read from its Authorization header."""
    return refusal(request.app.state.settings, await _bearer(request))


async def verify_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse a request unless it carries this start's token (constant-time comparison).

    async although it does no I/O: FastAPI runs plain-def dependencies in its thread pool,
    a hop that doubled the latency of every polled call under load.
    """
    problem = refusal(request.app.state.settings, credentials)
    if problem is not None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, problem, headers={"WWW-Authenticate": "Bearer"}
        )
