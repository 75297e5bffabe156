"""A small HTTP client for the engine's /v1 API, standard library only.

Typed dataclasses mirror the API's JSON. Calls block, so they run inside a QgsTask's run()
(never on the GUI thread). Proxies are bypassed: the engine is on loopback.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import EngineRequestError, EngineUnavailable

API_VERSION = "1"
PORT_FILE = "engine.json"
TERMINAL_STATES = frozenset({"done", "failed", "cancelled"})

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Endpoint:
    """Where a running engine listens and the token it wants."""

    host: str
    port: int
    token: str
    pid: int | None = None
    version: str = ""

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class DeviceInfo:
    type: str
    name: str
    memory_total_mb: int | None
    reason: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeviceInfo:
        return cls(
            type=str(data.get("type", "cpu")),
            name=str(data.get("name", "")),
            memory_total_mb=data.get("memory_total_mb"),
            reason=str(data.get("reason", "")),
        )

    def describe(self) -> str:
        """ "GPU name (memory)" or "CPU (name)", for Settings and the set-up dialog."""
        if self.type == "cpu":
            return f"CPU ({self.name})" if self.name else "CPU"
        memory = f", {self.memory_total_mb / 1024:.0f} GB" if self.memory_total_mb else ""
        return f"{self.type.upper()}: {self.name}{memory}"


@dataclass(frozen=True)
class Health:
    status: str
    engine_version: str
    api_version: str
    torch_version: str
    device: DeviceInfo
    devices: tuple[DeviceInfo, ...]
    models_loaded: tuple[str, ...]
    active_model: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Health:
        return cls(
            status=str(data.get("status", "")),
            engine_version=str(data.get("engine_version", "")),
            api_version=str(data.get("api_version", "")),
            torch_version=str(data.get("torch_version", "")),
            device=DeviceInfo.from_json(data.get("device") or {}),
            devices=tuple(DeviceInfo.from_json(d) for d in data.get("devices") or ()),
            models_loaded=tuple(data.get("models_loaded") or ()),
            active_model=str(data.get("active_model", "")),
        )


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    config_name: str
    classes: tuple[str, ...]
    shipped: bool
    card: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelInfo:
        return cls(
            name=str(data["name"]),
            path=str(data.get("path", "")),
            config_name=str(data.get("config_name", "")),
            classes=tuple(str(c) for c in data.get("classes") or ()),
            shipped=bool(data.get("shipped", False)),
            card=dict(data.get("card") or {}),
        )


@dataclass(frozen=True)
class ModelList:
    active: str
    models: tuple[ModelInfo, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelList:
        return cls(
            active=str(data.get("active", "")),
            models=tuple(ModelInfo.from_json(m) for m in data.get("models") or ()),
        )

    def active_classes(self) -> tuple[str, ...]:
        """Class names of the active model, offered as prompt completions."""
        return next((m.classes for m in self.models if m.name == self.active), ())


@dataclass(frozen=True)
class Aoi:
    """Area of interest: bounds or WKT, in `crs` (an authority id or WKT)."""

    crs: str
    bounds: tuple[float, float, float, float] | None = None
    wkt: str | None = None

    def to_json(self) -> dict[str, Any]:
        bounds = list(self.bounds) if self.bounds is not None else None
        return {"bounds": bounds, "wkt": self.wkt, "crs": self.crs}


@dataclass(frozen=True)
class SegmentRequest:
    """Body of POST /v1/segment: one `raster`, or several `rasters` as one collection job
    (then `raster` is None)."""

    raster: str | None
    prompts: tuple[str, ...]
    output: str
    overwrite: bool = False
    model: str | None = None
    device: str = "auto"
    tile: int | None = None
    overlap: int | None = None
    threshold: float = 0.5
    batch_size: int | None = None
    bands: tuple[int, ...] | None = None
    aoi: Aoi | None = None
    assume_crs: str | None = None
    gsd: str | float = "auto"  # working resolution: auto (the model's), native, or metres
    rasters: tuple[str, ...] | None = None  # a collection: one job, one layer per prompt
    out_crs: str | None = None  # a collection's output CRS (None: the first raster's)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The raster files the job reads, one or many."""
        return tuple(self.rasters) if self.rasters is not None else (str(self.raster),)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["prompts"] = list(self.prompts)
        body["bands"] = list(self.bands) if self.bands is not None else None
        body["aoi"] = self.aoi.to_json() if self.aoi is not None else None
        # Sent only when used, so a single raster's request is what an engine without
        # collections accepts, and a collection names no `raster`.
        for name in ("raster", "rasters", "out_crs"):
            if body[name] is None:
                del body[name]
        if self.rasters is not None:
            body["rasters"] = list(self.rasters)
        return body


@dataclass(frozen=True)
class SentenceLabel:
    """One full expression tied to a label feature: its id, or its geometry as WKT in the
    label layer's CRS."""

    sentence: str
    feature_id: int | str | None = None
    wkt: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainDataset:
    """The train request's data: rasters, a polygon label layer and its class field."""

    rasters: tuple[str, ...]
    labels: str
    class_field: str
    id_field: str | None = None
    sentences: tuple[SentenceLabel, ...] = ()
    validation: Mapping[str, Any] | None = None
    # "group": a class name trains as the toolbar reads it ("all buildings" in each chip);
    # "feature": one chip per feature, its outline only (WREL's one-instance label).
    class_samples: str = "group"

    def to_json(self) -> dict[str, Any]:
        return {
            "rasters": list(self.rasters),
            "labels": self.labels,
            "class_field": self.class_field,
            "id_field": self.id_field,
            "sentences": [s.to_json() for s in self.sentences],
            "validation": dict(self.validation) if self.validation is not None else None,
            "class_samples": self.class_samples,
        }


@dataclass(frozen=True)
class TrainRequest:
    """Body of POST /v1/train: the job registers a model under `name` when it succeeds."""

    name: str
    recipe: str | Mapping[str, Any]
    dataset: TrainDataset
    base_model: str | None = None
    device: str = "auto"

    def to_json(self) -> dict[str, Any]:
        recipe = self.recipe if isinstance(self.recipe, str) else dict(self.recipe)
        return {
            "name": self.name,
            "base_model": self.base_model,
            "recipe": recipe,
            "dataset": self.dataset.to_json(),
            "device": self.device,
        }


@dataclass(frozen=True)
class SentenceSuggestion:
    """POST /v1/train/suggest's item: a sentence true of exactly one label feature on the
    chip training cuts for it; the feature's id, class and WKT in the label layer's CRS."""

    sentence: str
    feature_id: int
    class_name: str
    wkt: str
    kind: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SentenceSuggestion:
        return cls(
            sentence=str(data["sentence"]),
            feature_id=int(data["feature_id"]),
            class_name=str(data["class_name"]),
            wkt=str(data["wkt"]),
            kind=str(data.get("kind", "")),
        )


@dataclass(frozen=True)
class JobInfo:
    id: str
    kind: str
    state: str
    progress: float
    message: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    request: Mapping[str, Any]
    result: Mapping[str, Any] | None
    metrics: Mapping[str, float] | None
    error: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobInfo:
        return cls(
            id=str(data["id"]),
            kind=str(data.get("kind", "")),
            state=str(data["state"]),
            progress=float(data.get("progress") or 0.0),
            message=str(data.get("message") or ""),
            created_at=str(data.get("created_at") or ""),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            request=dict(data.get("request") or {}),
            result=dict(data["result"]) if data.get("result") else None,
            metrics=dict(data["metrics"]) if data.get("metrics") else None,
            error=data.get("error"),
        )

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def output(self) -> str | None:
        return (self.result or {}).get("output")

    def result_layers(self, prompts: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The GeoPackage's layers and the prompts each holds, in the engine's prompt order:
        the result's `layers` (prompt → layer); an engine older than collections wrote every
        prompt of `prompts` to one layer, "saymap"."""
        layers = (self.result or {}).get("layers") or dict.fromkeys(prompts, "saymap")
        held: dict[str, list[str]] = {}
        for prompt, layer in layers.items():
            held.setdefault(str(layer), []).append(str(prompt))
        return {layer: tuple(names) for layer, names in held.items()}


def read_port_file(data_dir: Path) -> Endpoint | None:
    """The endpoint a running engine recorded in `<data_dir>/engine.json`, or None.

    A stale file (its process gone) counts as none; the token is read from `token_path`.
    """
    try:
        info = json.loads((data_dir / PORT_FILE).read_text(encoding="utf-8"))
        token_path = Path(info.get("token_path") or data_dir / "token")
        token = token_path.read_text(encoding="utf-8").strip()
        endpoint = Endpoint(
            host=str(info.get("host", "127.0.0.1")),
            port=int(info["port"]),
            token=token,
            pid=int(info["pid"]) if info.get("pid") is not None else None,
            version=str(info.get("version", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if endpoint.pid is not None and not _pid_alive(endpoint.pid):
        return None
    return endpoint


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # no cheap check without ctypes; the health call decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EngineClient:
    """Blocking calls to one engine; each raises EngineUnavailable or EngineRequestError."""

    def __init__(self, endpoint: Endpoint, timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    def health(self) -> Health:
        return Health.from_json(self._call("GET", "/v1/health", auth=False))

    def models(self) -> ModelList:
        return ModelList.from_json(self._call("GET", "/v1/models"))

    def set_active_model(self, name: str) -> ModelList:
        return ModelList.from_json(self._call("PUT", "/v1/models/active", {"name": name}))

    def segment(self, request: SegmentRequest) -> JobInfo:
        return JobInfo.from_json(self._call("POST", "/v1/segment", request.to_json()))

    def train(self, request: TrainRequest) -> JobInfo:
        return JobInfo.from_json(self._call("POST", "/v1/train", request.to_json()))

    def train_preview(self, request: TrainRequest) -> dict[str, Any]:
        """What a train job with this request's data and recipe would train and validate on
        (POST /v1/train/preview; the name and device are not part of it)."""
        body = request.to_json()
        keep = ("base_model", "recipe", "dataset")
        return self._call("POST", "/v1/train/preview", {k: body[k] for k in keep})

    def train_suggest(
        self, request: TrainRequest, limit: int = 20, seed: int = 0
    ) -> list[SentenceSuggestion]:
        """Sentences about the request's label features, each true on the chip training
        would cut for it, none about a feature its sentences already describe
        (POST /v1/train/suggest; the name and device are not part of it)."""
        body = request.to_json()
        keep = {k: body[k] for k in ("base_model", "recipe", "dataset")}
        answer = self._call("POST", "/v1/train/suggest", {**keep, "limit": limit, "seed": seed})
        return [SentenceSuggestion.from_json(s) for s in answer.get("suggestions") or ()]

    def job(self, job_id: str) -> JobInfo:
        return JobInfo.from_json(self._call("GET", f"/v1/jobs/{job_id}"))

    def jobs(self) -> list[JobInfo]:
        return [JobInfo.from_json(j) for j in self._call("GET", "/v1/jobs").get("jobs", [])]

    def cancel(self, job_id: str) -> JobInfo:
        try:
            return JobInfo.from_json(self._call("POST", f"/v1/jobs/{job_id}/cancel"))
        except EngineRequestError as exc:
            if exc.status != 405:
                raise
        # An engine older than POST …/cancel cancelled with DELETE.
        return JobInfo.from_json(self._call("DELETE", f"/v1/jobs/{job_id}"))

    def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, auth: bool = True
    ) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.endpoint.base_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.endpoint.token}")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8") or "{}")
        except urllib.error.HTTPError as exc:
            raise EngineRequestError(exc.code, _detail(exc)) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EngineUnavailable(
                f"The SayMap engine at {self.endpoint.base_url} does not answer ({reason})."
            ) from exc


def _detail(exc: urllib.error.HTTPError) -> str:
    """The engine's `detail` sentence; FastAPI's 422 gives a list of problems instead."""
    try:
        detail = json.loads(exc.read().decode("utf-8")).get("detail")
    except (OSError, ValueError, AttributeError):
        return exc.reason or "the engine refused the request without saying why"
    if isinstance(detail, str):
        return detail
    if isinstance(detail, Sequence):
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg")))
        if parts:
            return "; ".join(parts)
    return str(detail)
