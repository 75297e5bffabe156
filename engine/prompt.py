"""The prompt rule, in one place: what a prompt may be, and how many one request may hold.

The command line, the HTTP API (its request schema states these limits, its preflight
applies this rule) and the plugin (which shows the engine's refusal as it is) all refuse the
same prompts with the same sentence. The sentences name no flag and no status code, since
the plugin shows them to a person who typed into a box. No torch here, so a bad prompt is
refused before anything heavy loads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from saymap.engine.errors import PromptError

log = logging.getLogger(__name__)

MAX_PROMPTS = 16  # each prompt is one more pass of the model over every tile
MAX_PROMPT_CHARS = 300  # far past what the text encoder reads; also a GeoPackage field
EMPTY_PROMPT = 'the prompt is empty: say what to map, e.g. "storage tank"'


def unwritable(text: str) -> str | None:
    """Why text cannot be written to a file or a GeoPackage field as UTF-8 (None: it can)."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    return None


def check_prompt(text: str) -> str:
    """One prompt, whitespace collapsed; PromptError when it cannot be used as typed."""
    if problem := unwritable(text):
        raise PromptError(f"a prompt {problem}")
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptError(
            f"a prompt may be at most {MAX_PROMPT_CHARS} characters; this one has {len(text)}"
        )
    cleaned = " ".join(text.split())
    if not cleaned:
        raise PromptError(EMPTY_PROMPT)
    return cleaned


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """The prompts of one request by the rule above: at least one, at most MAX_PROMPTS."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        raise PromptError(EMPTY_PROMPT)
    if len(prompts) > MAX_PROMPTS:
        raise PromptError(f"at most {MAX_PROMPTS} prompts at once; got {len(prompts)}")
    return [check_prompt(str(p)) for p in prompts]


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
