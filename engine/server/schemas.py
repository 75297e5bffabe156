"""Request and response models: the contract the plugin is built against.

The served OpenAPI document is generated from these, so every limit a request must meet is
stated here (lengths, ranges, patterns) and schemathesis can check the server keeps them.
Checks that need the file system (does the raster exist?) live in `preflight.py`.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from saymap.engine.limits import MAX_BATCH_SIZE, MAX_OVERLAP_PX, MAX_TILE_PX
from saymap.engine.prompt import (
    MAX_PROMPT_CHARS,
    MAX_PROMPTS,
    check_prompt,
    check_prompts,
    unwritable,
)

JobKind = Literal["segment", "train"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
DeviceType = Literal["cpu", "cuda", "mps"]
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]{1,2})?)$"
# The rules below are checked by the validators (with sentences a person can act on) and
# stated as patterns in the OpenAPI document, so a request the schema allows is one the
# validators allow. NUL is written as a regex escape (\u0000). Lone surrogates, which UTF-8
# cannot encode, are refused too but not stated: JSON Schema engines in Rust (schemathesis's
# among them) cannot compile a surrogate range, and no JSON encoder sends one by accident.
_CHAR = r"[^\u0000]"  # any character but NUL
# Absolute on the engine's own machine: on POSIX a path that starts with a backslash is a
# name in the engine's working folder (schemathesis had one written there), so only Windows
# accepts C:\…, C:/… and UNC paths.
_ABSOLUTE = r"(?:/|\\|[A-Za-z]:[/\\])" if os.name == "nt" else r"/"
PLAIN_PATTERN = rf"^{_CHAR}*$"
ABSOLUTE_PATTERN = rf"^{_ABSOLUTE}{_CHAR}*$"
# `(?![\s\S])`: the very end. `$` also matches before a final newline in Python's regexes,
# so generators that read the document with them (hypothesis) would send "x.gpkg\n".
_END = r"(?![\s\S])"
GPKG_PATTERN = rf"^{_ABSOLUTE}{_CHAR}*\.gpkg{_END}"
# Not only whitespace, as str.split() sees it: \s, and \x1c-\x1f that Python splits on too.
PROMPT_PATTERN = rf"^{_CHAR}*[^\u0000\s\u001c-\u001f]{_CHAR}*$"


def _plain_text(value: str) -> str:
    """Refuse text that cannot be written to a file or a GeoPackage field as UTF-8."""
    if problem := unwritable(value):
        raise ValueError(problem)
    return value


def _absolute_path(value: str) -> str:
    _plain_text(value)
    if not re.match(_ABSOLUTE, value):
        raise ValueError(f"must be an absolute path, got {value!r}")
    return value


def _geopackage_path(value: str) -> str:
    _absolute_path(value)
    if not value.endswith(".gpkg"):
        raise ValueError(f"must name a GeoPackage (end in .gpkg), got {value!r}")
    return value


def _prompt(value: str) -> str:
    check_prompt(value)  # a PromptError: app.py passes its sentence on as it is
    return value


def _prompt_list(values: list[str]) -> list[str]:
    check_prompts(values)
    return values


def _pattern(pattern: str) -> Any:
    """The pattern for the OpenAPI document only (validators check it, with better words)."""
    return Field(json_schema_extra={"pattern": pattern})


Text = Annotated[str, AfterValidator(_plain_text), _pattern(PLAIN_PATTERN)]
AbsolutePath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4096),
    AfterValidator(_absolute_path),
    _pattern(ABSOLUTE_PATTERN),
]
GeoPackagePath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4096),
    AfterValidator(_geopackage_path),
    _pattern(GPKG_PATTERN),
]
# The prompt rule is engine/prompt.py's, applied by the validators (so the API refuses with
# the same sentence as the command line); the limits are stated here for the document.
Prompt = Annotated[
    str,
    AfterValidator(_prompt),
    Field(
        json_schema_extra={
            "pattern": PROMPT_PATTERN,
            "minLength": 1,
            "maxLength": MAX_PROMPT_CHARS,
        }
    ),
]
Prompts = Annotated[
    list[Prompt],
    AfterValidator(_prompt_list),
    Field(json_schema_extra={"minItems": 1, "maxItems": MAX_PROMPTS}),
]
ModelName = Annotated[
    str,
    StringConstraints(pattern=MODEL_NAME_PATTERN),
    _pattern(MODEL_NAME_PATTERN.removesuffix("$") + _END),
]
DeviceName = Annotated[
    str,
    StringConstraints(pattern=DEVICE_PATTERN),
    _pattern(DEVICE_PATTERN.removesuffix("$") + _END),
]
CrsText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=20000),
    AfterValidator(_plain_text),
    _pattern(PLAIN_PATTERN),
]
FieldName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_plain_text),
    _pattern(PLAIN_PATTERN),
]
WktText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100_000),
    AfterValidator(_plain_text),
    _pattern(PLAIN_PATTERN),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every refusal: one sentence a person can act on."""

    detail: str


class DeviceInfo(BaseModel):
    type: DeviceType
    name: str
    memory_total_mb: int | None = None
    reason: str = ""


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    engine_version: str
    api_version: str
    torch_version: str
    device: DeviceInfo = Field(description="the device 'auto' picks, and why")
    devices: list[DeviceInfo]
    models_loaded: list[str] = Field(description="models held warm in memory, as name@device")
    active_model: str


class ModelInfo(BaseModel):
    name: str
    path: str
    config_name: str
    card: dict[str, Any]
    classes: list[str]
    shipped: bool


class ModelList(BaseModel):
    active: str
    models: list[ModelInfo]


class ActiveModelRequest(_Strict):
    name: ModelName


def _exactly_one(a: tuple[str, str], b: tuple[str, str]) -> dict[str, Any]:
    """JSON Schema for "exactly one of a or b is given (the other absent or null)", for the
    OpenAPI document; each pair is (property, its JSON type)."""
    return {
        "oneOf": [
            {"required": [a[0]], "properties": {a[0]: {"type": a[1]}, b[0]: {"type": "null"}}},
            {"required": [b[0]], "properties": {b[0]: {"type": b[1]}, a[0]: {"type": "null"}}},
        ]
    }


class AOI(_Strict):
    """An area of interest: bounds or a WKT geometry, in `crs`.

    minx < maxx and miny < maxy, which a schema cannot say, is checked with the raster (400).
    """

    model_config = ConfigDict(
        json_schema_extra=_exactly_one(("bounds", "array"), ("wkt", "string"))
    )

    bounds: (
        Annotated[
            list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=4, max_length=4)
        ]
        | None
    ) = None
    wkt: WktText | None = None
    crs: CrsText = Field(description="e.g. 'EPSG:4326' or a WKT string")

    @model_validator(mode="after")
    def _one_shape(self) -> AOI:
        if (self.bounds is None) == (self.wkt is None):
            raise ValueError("give exactly one of bounds or wkt")
        return self


# A collection job's rasters: the request body limit (settings.max_body_bytes) bounds it too.
MAX_RASTERS = 10_000


class SegmentRequest(_Strict):
    """One raster (`raster`, as before) or a collection (`rasters`): exactly one of the two.

    A collection is one job: the model loads once, objects across the edge between two
    rasters come out as one polygon, and one layer per prompt is written (engine/
    collection_job.py); a re-sent request with the same output resumes where it stopped."""

    model_config = ConfigDict(
        json_schema_extra=_exactly_one(("raster", "string"), ("rasters", "array"))
    )

    raster: AbsolutePath | None = Field(
        default=None, description="absolute path of a raster the engine can read"
    )
    rasters: Annotated[list[AbsolutePath], Field(min_length=1, max_length=MAX_RASTERS)] | None = (
        Field(
            default=None,
            description="absolute paths of several rasters, segmented as one collection job",
        )
    )
    out_crs: CrsText | None = Field(
        default=None,
        description="CRS of the output (e.g. 'EPSG:32633' or WKT); null: the first raster's. "
        "Polygons of rasters in another CRS are reprojected to it",
    )
    prompts: Prompts
    output: GeoPackagePath = Field(
        description="absolute path of the GeoPackage to write (its folder must exist)"
    )
    overwrite: bool = False
    model: ModelName | None = Field(default=None, description="a registered model; null = active")
    device: DeviceName = "auto"
    tile: Annotated[int, Field(ge=64, le=MAX_TILE_PX, multiple_of=32)] | None = Field(
        default=None, description="tile side in pixels (a multiple of 32); null: the model's"
    )
    overlap: Annotated[int, Field(ge=0, le=MAX_OVERLAP_PX)] | None = None
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)] | None = None
    bands: (
        Annotated[list[Annotated[int, Field(ge=1, le=10_000)]], Field(min_length=1, max_length=3)]
        | None
    ) = Field(default=None, description="1-based: one band (grey) or three (R, G, B)")
    aoi: AOI | None = None
    assume_crs: CrsText | None = Field(
        default=None, description="CRS to assume when the raster has none"
    )
    gsd: (
        Annotated[float, Field(gt=0.0, le=10_000.0)]
        | Annotated[
            str,
            StringConstraints(pattern=r"^(auto|native)$"),
            _pattern(r"^(auto|native)" + _END),
        ]
    ) = Field(
        default="auto",
        description="working resolution: auto (the model card's gsd_m), native (the raster's "
        "own), or metres per pixel",
    )

    @model_validator(mode="after")
    def _one_input(self) -> SegmentRequest:
        if (self.raster is None) == (self.rasters is None):
            raise ValueError("give exactly one of raster or rasters")
        return self

    @property
    def inputs(self) -> list[str]:
        """The rasters the request names, one or many."""
        return [self.raster] if self.raster is not None else list(self.rasters or ())

    @property
    def is_collection(self) -> bool:
        """Whether the job runs as a collection (several rasters, or an output CRS to
        reproject to); a plain `raster` request runs the single-raster pipeline as before."""
        return self.rasters is not None or self.out_crs is not None


class SentenceLabel(_Strict):
    feature_id: int | Annotated[str, StringConstraints(max_length=200)] | None = None
    wkt: WktText | None = None
    sentence: Prompt


class TrainValidation(_Strict):
    """What to validate on: a share of the features (by id), or the chips inside an area."""

    model_config = ConfigDict(
        json_schema_extra=_exactly_one(("fraction", "number"), ("area", "object"))
    )

    fraction: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        default=None, description="share of the features held out, chosen by a hash of the id"
    )
    area: AOI | None = Field(
        default=None,
        description="chips wholly inside validate, chips outside train, chips across its "
        "edge are left out, so neighbouring pixels never leak into validation",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> TrainValidation:
        if (self.fraction is None) == (self.area is None):
            raise ValueError("give exactly one of fraction or area")
        return self


class TrainDataset(_Strict):
    rasters: Annotated[list[AbsolutePath], Field(min_length=1, max_length=256)]
    labels: AbsolutePath
    class_field: FieldName
    id_field: FieldName | None = Field(
        default=None, description="the labels' field that sentences' feature_id names"
    )
    sentences: Annotated[list[SentenceLabel], Field(max_length=10_000)] = []
    validation: TrainValidation | None = None
    class_samples: Literal["group", "feature"] = Field(
        default="group",
        description="what a feature's class name trains: 'group', every feature of the class "
        "in a chip ('all buildings': what a class-name prompt means in segment jobs); "
        "'feature', one chip per feature with its outline only (WREL's one-instance label)",
    )


# A shipped recipe's name, a recipe file's absolute path, or the recipe's tables inline.
RecipeSpec = (
    Annotated[
        str,
        StringConstraints(min_length=1, max_length=4096),
        AfterValidator(_plain_text),
        _pattern(PLAIN_PATTERN),
    ]
    | dict[str, Any]
)


class TrainRequest(_Strict):
    name: ModelName = Field(description="the new model's name; must not be registered yet")
    base_model: ModelName | None = None
    recipe: RecipeSpec = Field(
        description="a shipped recipe's name, the absolute path of a recipe file, or the "
        "recipe's tables as an object"
    )
    dataset: TrainDataset
    device: DeviceName = "auto"


class TrainPreviewRequest(_Strict):
    """A train request's data and recipe, to see what it would train and validate on."""

    base_model: ModelName | None = None
    recipe: RecipeSpec = Field(
        description="a shipped recipe's name, the absolute path of a recipe file, or the "
        "recipe's tables as an object"
    )
    dataset: TrainDataset


class SentenceFate(BaseModel):
    fate: Literal["train", "validation", "edge", "held_out", "unused"] = Field(
        description="train: a training sample; validation: inside the validation area or "
        "share; edge: its chip crosses the validation area's edge (in neither set); held_out: "
        "its chip touches the real-imagery hold-out; unused: left out by the recipe"
    )
    class_name: str | None = None


class ChipCount(BaseModel):
    weak: int = Field(ge=0, description="class-name samples")
    full: int = Field(ge=0, description="full-sentence samples")


class TrainPreview(BaseModel):
    """What training would use, decided by the trainer's own split: nothing is trained."""

    sentences: list[SentenceFate] = Field(description="one per request sentence, in order")
    train: ChipCount
    validation: ChipCount
    edge: int = Field(ge=0, description="chips across the validation area's edge")
    held_out: int = Field(ge=0, description="chips kept back for the real-imagery hold-out")
    classes: dict[str, int] = Field(description="training class-name samples per class")
    method: str = Field(description="the recipe's WREL method")
    problem: str | None = Field(
        default=None, description="why a train job would fail before its first step"
    )


class TrainSuggestRequest(TrainPreviewRequest):
    """A train request's data and recipe, to suggest sentences about its label features."""

    limit: int = Field(default=20, ge=1, le=200, description="at most this many suggestions")
    seed: int = Field(
        default=0, ge=0, le=2**31 - 1, description="another seed picks other features"
    )


class SentenceSuggestion(BaseModel):
    sentence: str = Field(description="true of exactly this feature on its training chip")
    feature_id: int = Field(description="the label layer's feature id (its OGR FID)")
    class_name: str
    wkt: str = Field(description="the feature's geometry in the label layer's CRS")
    kind: str = Field(description="largest, smallest, position, relation, area, ...")


class TrainSuggestions(BaseModel):
    """Sentences computed from the label polygons, one per feature; none is about a feature
    the request's sentences already describe or whose chip would not train."""

    suggestions: list[SentenceSuggestion]


class JobResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    output: str | None = None
    n_features: int | None = None
    model: str | None = None
    layers: dict[str, str] | None = Field(
        default=None, description="each prompt's layer in the GeoPackage"
    )
    rasters: list[str] | None = Field(default=None, description="the rasters segmented")
    units: int | None = Field(default=None, description="shares of work the job was cut into")
    units_resumed: int | None = Field(
        default=None, description="units an earlier, stopped run of this job had finished"
    )


class JobInfo(BaseModel):
    id: str
    kind: JobKind
    state: JobState
    progress: Annotated[float, Field(ge=0.0, le=1.0)]
    message: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    request: dict[str, Any]
    result: JobResult | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None


class JobList(BaseModel):
    jobs: list[JobInfo]
