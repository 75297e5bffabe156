"""Prompt checks: refuse empty prompts, warn about ones the text encoder will truncate.

No torch here, so the command line can refuse a bad prompt before loading anything heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from saymap.engine.errors import PromptError

log = logging.getLogger(__name__)


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """PromptError on no prompt or an empty one; whitespace trimmed."""
    if isinstance(prompts, str):
        prompts = [prompts]
    cleaned = [" ".join(str(p).split()) for p in prompts]
    if not cleaned or any(not p for p in cleaned):
        raise PromptError('the prompt is empty: say what to map, e.g. "storage tank"')
    return cleaned


def token_warnings(model: Any, prompts: Sequence[str]) -> list[str]:
    """Warn (log and return) for each prompt longer than the model reads; it gets truncated."""
    counter = getattr(model, "count_tokens", None)
    limit = getattr(getattr(model, "config", None), "max_tokens", None)
    if counter is None or limit is None:
        return []
    warnings = []
    for prompt in prompts:
        count = int(counter(prompt))
        if count > limit:
            message = (
                f"prompt {prompt!r} has {count} tokens; the model reads the first {limit} "
                "(the rest is cut off)"
            )
            log.warning(message)
            warnings.append(message)
    return warnings
