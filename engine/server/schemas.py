"""Request and response models: the contract the plugin is built against.

The served OpenAPI document is generated from these, so every limit a request must meet is
stated here (lengths, ranges, patterns) and schemathesis can check the server keeps them.
Checks that need the file system (does the raster exist?) live in `validation.py`.
"""

from __future__ import annotations

import ntpath
import posixpath
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

JobKind = Literal["segment", "train"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
DeviceType = Literal["cpu", "cuda", "mps"]
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]{1,2})?)$"


def _plain_text(value: str) -> str:
    """Refuse text that cannot be written to a file or a GeoPackage field as UTF-8."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from exc
    return value


def _absolute_path(value: str) -> str:
    _plain_text(value)
    if not (posixpath.isabs(value) or ntpath.isabs(value)):
        raise ValueError(f"must be an absolute path, got {value!r}")
    return value


Text = Annotated[str, AfterValidator(_plain_text)]
AbsolutePath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4096),
    AfterValidator(_absolute_path),
]
Prompt = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    AfterValidator(_plain_text),
]
ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]
CrsText = Annotated[
    str, StringConstraints(min_length=1, max_length=20000), AfterValidator(_plain_text)
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


class AOI(_Strict):
    """An area of interest: bounds or a WKT geometry, in `crs`."""

    bounds: (
        Annotated[
            list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=4, max_length=4)
        ]
        | None
    ) = None
    wkt: (
        Annotated[
            str, StringConstraints(min_length=1, max_length=100_000), AfterValidator(_plain_text)
        ]
        | None
    ) = None
    crs: CrsText = Field(description="e.g. 'EPSG:4326' or a WKT string")

    @model_validator(mode="after")
    def _one_shape(self) -> AOI:
        if (self.bounds is None) == (self.wkt is None):
            raise ValueError("give exactly one of bounds or wkt")
        if self.bounds is not None:
            minx, miny, maxx, maxy = self.bounds
            if not (minx < maxx and miny < maxy):
                raise ValueError("bounds must be [minx, miny, maxx, maxy] with min < max")
        return self


class SegmentRequest(_Strict):
    raster: AbsolutePath = Field(description="absolute path of a raster the engine can read")
    prompts: Annotated[list[Prompt], Field(min_length=1, max_length=16)]
    output: Annotated[AbsolutePath, StringConstraints(pattern=r"\.gpkg$")] = Field(
        description="absolute path of the GeoPackage to write (its folder must exist)"
    )
    overwrite: bool = False
    model: ModelName | None = Field(default=None, description="a registered model; null = active")
    device: Annotated[str, StringConstraints(pattern=DEVICE_PATTERN)] = "auto"
    tile: Annotated[int, Field(ge=64, le=4096, multiple_of=32)] | None = Field(
        default=None, description="tile side in pixels (a multiple of 32); null: the model's"
    )
    overlap: Annotated[int, Field(ge=0, le=2048)] | None = None
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    batch_size: Annotated[int, Field(ge=1, le=256)] | None = None
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
        | Annotated[str, StringConstraints(pattern=r"^(auto|native)$")]
    ) = Field(
        default="auto",
        description="working resolution: auto (the model card's gsd_m), native (the raster's "
        "own), or metres per pixel",
    )


class SentenceLabel(_Strict):
    feature_id: int | Annotated[str, StringConstraints(max_length=200)] | None = None
    wkt: (
        Annotated[
            str, StringConstraints(min_length=1, max_length=100_000), AfterValidator(_plain_text)
        ]
        | None
    ) = None
    sentence: Prompt


class TrainValidation(_Strict):
    """What to validate on: a share of the features (by id), or the chips inside an area."""

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
    class_field: Annotated[
        str, StringConstraints(min_length=1, max_length=200), AfterValidator(_plain_text)
    ]
    id_field: (
        Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_plain_text)]
        | None
    ) = Field(default=None, description="the labels' field that sentences' feature_id names")
    sentences: Annotated[list[SentenceLabel], Field(max_length=10_000)] = []
    validation: TrainValidation | None = None


class TrainRequest(_Strict):
    name: ModelName = Field(description="the new model's name; must not be registered yet")
    base_model: ModelName | None = None
    recipe: (
        Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_plain_text)]
        | dict[str, Any]
    )
    dataset: TrainDataset
    device: Annotated[str, StringConstraints(pattern=DEVICE_PATTERN)] = "auto"


class JobResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    output: str | None = None
    n_features: int | None = None
    model: str | None = None


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
