"""The engine's words, said in QGIS's: the one place that turns what the engine answers
(a refusal, a failed job, a warning) into what the message bar and Processing show.

The engine speaks to every caller, the command line among them, so its sentences name
command-line flags ("pass --assume-crs") and its refusals come with HTTP codes. A QGIS user
has neither: each rule below finds one of the engine's sentences and says it in QGIS terms
(Layer Properties, Processing's parameters). A sentence no rule knows is shown as the engine
said it, never with an HTTP code, and with any leftover flag advice taken out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import EngineRequestError, EngineUnavailable, JobFailed

# What a problem is, for the code that offers a way out (a button, forgetting the engine).
NO_CRS = "no_crs"  # the raster has no CRS: set one, or use the project's
BAD_CRS = "bad_crs"  # the CRS sent for the raster is not one the engine can use
OUTPUT_EXISTS = "output_exists"
ENGINE_GONE = "engine_gone"  # no engine answers: forget the one we knew
ENGINE_ERROR = "engine_error"  # the engine failed on its side (HTTP 5xx)
REFUSED = "refused"  # any other refusal of the request, in the engine's own words
FAILED = "failed"  # the job ran and failed
PLUGIN = "plugin"  # the plugin's own message (no engine involved)

LAYER_PROPERTIES_CRS = "Layer Properties ▸ Source ▸ Assigned coordinate reference system"


@dataclass(frozen=True)
class Problem:
    """What went wrong, as the user reads it (`text`) and as the code acts on it (`kind`)."""

    kind: str
    text: str


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    say: Callable[[re.Match[str]], str]


def _name(path: str) -> str:
    return Path(path.strip()).name or path


_RULES = (
    _Rule(
        NO_CRS,
        re.compile(r"(?P<path>.+?) has no coordinate reference system\b.*", re.DOTALL),
        lambda m: (
            f"“{_name(m['path'])}” has no coordinate reference system: set it in "
            f"{LAYER_PROPERTIES_CRS}."
        ),
    ),
    _Rule(
        BAD_CRS,
        re.compile(r"--assume-crs (?P<crs>.+?) is not a CRS: (?P<why>.*)", re.DOTALL),
        lambda m: (
            f"The raster's CRS ({m['crs'].strip(chr(39))}) is not one the engine can use "
            f"({m['why'].strip()}); choose another in {LAYER_PROPERTIES_CRS}."
        ),
    ),
    _Rule(
        OUTPUT_EXISTS,
        re.compile(
            r"(?:the output )?(?P<path>.+?) already exists; "
            r"(?:choose another name or send overwrite: true|pass --overwrite.*)",
            re.DOTALL,
        ),
        lambda m: (
            f"{m['path']} already exists: choose another output file, or tick “Replace the "
            "output file if it exists”."
        ),
    ),
    _Rule(
        OUTPUT_EXISTS,
        re.compile(r"(?P<path>.+?) appeared while segmenting; kept it\..*", re.DOTALL),
        lambda m: f"{m['path']} appeared while segmenting and was kept; choose another output.",
    ),
)

# Flag advice inside a sentence no rule rewrote as a whole: (pattern, QGIS words).
_FLAG_ADVICE = (
    (
        re.compile(r"Pass --gsd native, or a gsd within (?P<x>\S+) of the raster's"),
        r"In Processing's “Segment by text”, set the working resolution to native, or to "
        r"one within \g<x> of the raster's",
    ),
    (re.compile(r"\s*\((?:pass|use) --[^)]*\)"), ""),  # "(pass --gsd native to silence this)"
    (re.compile(r"[;,]?\s*(?:pass|use|add) --[\w-]+[^;.)]*"), ""),
)


def plain(text: str) -> str:
    """An engine sentence with its command-line advice said in QGIS terms, or taken out."""
    for pattern, replacement in _FLAG_ADVICE:
        text = pattern.sub(replacement, text)
    return text.strip()


def explain_detail(detail: str, status: int | None = None) -> Problem:
    """The engine's sentence for a refused request (`status` its HTTP code, never shown)."""
    detail = detail.strip()
    for rule in _RULES:
        match = rule.pattern.fullmatch(detail)
        if match:
            return Problem(rule.kind, rule.say(match))
    if status is not None and status >= 500:
        return Problem(
            ENGINE_ERROR,
            "The SayMap engine hit an error of its own"
            + (f": {plain(detail)}" if detail and detail != "Internal Server Error" else ".")
            + " Its log says more (the SayMap tab of the log messages panel when QGIS "
            "started it).",
        )
    return Problem(REFUSED, plain(detail))


def explain(error: BaseException | str) -> Problem:
    """Any error the plugin reports, in the words the user should read."""
    if isinstance(error, str):
        return explain_detail(error)
    if isinstance(error, EngineRequestError):
        return explain_detail(error.detail, error.status)
    if isinstance(error, EngineUnavailable):
        return Problem(ENGINE_GONE, str(error))
    if isinstance(error, JobFailed):
        problem = explain_detail(str(error))
        return problem if problem.kind != REFUSED else Problem(FAILED, problem.text)
    return Problem(PLUGIN, plain(str(error)))
