"""One router per resource: health, models, segment, train, jobs."""

from __future__ import annotations

from typing import Any

from saymap.engine.server.schemas import ErrorBody

ERROR = {"model": ErrorBody}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented refusals of an operation: every one is `{"detail": "..."}`."""
    return {code: ERROR for code in codes}
