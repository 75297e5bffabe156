"""The real-imagery scorecard: what a user gets on real rasters, scored on the hold-outs.

For each labelled source of ../shared/data/real it runs the whole pipeline exactly as
`saymap segment` does (working resolution, tiles, blend, polygons) on the source's kept-back
area (training/holdouts.py), with each class name as the prompt, rasterises the polygons
on the raster's own grid and compares them with the labels there: pixel IoU, precision and
recall per source, per block (raster) and per class. Pixels are counted, not averaged, so
a pooled row is the IoU of all its pixels together.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from saymap.engine.aoi import aoi_from_bounds
from saymap.engine.infer import SegmentOptions, segment_raster
from saymap.engine.resolution import CardResolution
from saymap.training.dubai import class_mask, read_mask, unscored
from saymap.training.holdouts import RealSource, dubai_images, holdout_window, sources

log = logging.getLogger(__name__)


@dataclass
class Counts:
    """Pixel counts of one comparison; adding two pools their pixels."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, pred: np.ndarray, truth: np.ndarray, scored: np.ndarray | None = None) -> None:
        if scored is not None:
            pred, truth = pred & scored, truth & scored
        self.tp += int(np.count_nonzero(pred & truth))
        self.fp += int(np.count_nonzero(pred & ~truth))
        self.fn += int(np.count_nonzero(~pred & truth))

    def __iadd__(self, other: Counts) -> Counts:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn
        return self

    @property
    def iou(self) -> float:
        union = self.tp + self.fp + self.fn
        return self.tp / union if union else 0.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0


@dataclass
class Row:
    source: str
    block: str  # a raster's stem, or "all" for the pooled row of the source
    class_name: str
    counts: Counts
    polygons: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "source": self.source,
            "block": self.block,
            "class": self.class_name,
            "iou": round(c.iou, 4),
            "precision": round(c.precision, 4),
            "recall": round(c.recall, 4),
            **asdict(c),
            "polygons": self.polygons,
            "seconds": round(self.seconds, 2),
        }


@dataclass
class ScorecardSettings:
    gsd: str | float | None = "auto"
    literal: bool = False  # prompts as typed (the behaviour before class names meant "all")
    threshold: float = 0.5
    batch_size: int = 4
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def options(self, **overrides: Any) -> SegmentOptions:
        values = {
            "gsd": self.gsd,
            "literal": self.literal,
            "threshold": self.threshold,
            "batch_size": self.batch_size,
            "device": self.device,
            **overrides,
        }
        return SegmentOptions(**values)


def _rasterised(geometries, window, transform) -> np.ndarray:
    """(h, w) bool: `geometries` burnt into a window of the raster's grid."""
    shape = (int(window.height), int(window.width))
    geoms = [g for g in geometries if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(shape, bool)
    return rasterize(
        [(g, 1) for g in geoms], out_shape=shape, transform=transform, fill=0, dtype="uint8"
    ).astype(bool)


def _read_layer(path: Path, crs) -> Any:
    """A vector file as a GeoDataFrame in `crs` (its own CRS when it states none)."""
    import geopandas as gpd

    frame = gpd.read_file(path)
    if crs is None:
        return frame
    return frame.set_crs(crs) if frame.crs is None else frame.to_crs(crs)


def _predictions(gpkg: Path, crs) -> dict[str, list]:
    """The result GeoPackage's polygons per prompt."""
    frame = _read_layer(gpkg, crs)
    return {
        str(p): [g for g in group.geometry if g is not None and not g.is_empty]
        for p, group in frame.groupby("prompt")
    }


def score_layer_source(
    model: Any, source: RealSource, root: Path, settings: ScorecardSettings, work: Path
) -> list[Row]:
    """Each raster's east strip: segment every class, rasterise, compare with the labels."""
    rows = []
    labels = None
    for relative in source.rasters:
        path = root / relative
        with rasterio.open(path) as src:
            width, height, crs, transform = src.width, src.height, src.crs, src.transform
        if labels is None:  # the source's rasters share one CRS and one label layer
            labels = _read_layer(root / source.labels, crs)
        strip = holdout_window(width, height)
        strip_transform = window_transform(strip, transform)
        aoi = aoi_from_bounds(*window_bounds(strip, transform))
        out = work / f"{path.stem}.gpkg"
        started = time.perf_counter()
        segment_raster(
            path,
            list(source.classes),
            out,
            model=model,
            options=settings.options(aoi=aoi, overwrite=True),
        )
        seconds = time.perf_counter() - started
        predicted = _predictions(out, crs)
        for class_name in source.classes:
            polygons = predicted.get(class_name, [])
            truth = labels
            if source.class_field is not None:
                truth = labels[labels[source.class_field].astype(str).str.lower() == class_name]
            counts = Counts()
            counts.add(
                _rasterised(polygons, strip, strip_transform),
                _rasterised(truth.geometry, strip, strip_transform),
            )
            rows.append(Row(source.name, path.stem, class_name, counts, len(polygons), seconds))
    return rows


def score_dubai(
    model: Any, source: RealSource, root: Path, settings: ScorecardSettings, work: Path
) -> list[Row]:
    """The kept-back Dubai tile: whole images, segmented at native resolution (no CRS)."""
    rows = []
    for image, mask in dubai_images(root / "dubai_landcover", holdout=True):
        out = work / f"dubai_{image.parent.parent.name}_{image.stem}.gpkg"
        started = time.perf_counter()
        segment_raster(
            image,
            list(source.classes),
            out,
            model=model,
            options=settings.options(gsd="native", assume_crs="EPSG:3857", overwrite=True),
        )
        seconds = time.perf_counter() - started
        with rasterio.open(image) as src:
            window = Window(0, 0, src.width, src.height)
            transform = src.transform
        rgb = read_mask(mask)
        scored = ~unscored(rgb)
        predicted = _predictions(out, None)
        for class_name in source.classes:
            polygons = predicted.get(class_name, [])
            counts = Counts()
            counts.add(
                _rasterised(polygons, window, transform),
                class_mask(rgb, class_name).astype(bool),
                scored,
            )
            block = f"{image.parent.parent.name}/{image.stem}"
            rows.append(Row(source.name, block, class_name, counts, len(polygons), seconds))
    return rows


def pooled(rows: Iterable[Row]) -> list[Row]:
    """One row per source and class, pooling the pixels of its blocks."""
    out: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (row.source, row.class_name)
        if key not in out:
            out[key] = Row(row.source, "all", row.class_name, Counts())
        out[key].counts += row.counts
        out[key].polygons += row.polygons
    blocks_seconds: dict[tuple[str, str], float] = {}
    for row in rows:
        blocks_seconds[(row.source, row.block)] = row.seconds
    for (source, _), pooled_row in out.items():
        pooled_row.seconds = sum(s for (src, _), s in blocks_seconds.items() if src == source)
    return list(out.values())


def run_scorecard(
    model: Any,
    root: Path,
    settings: ScorecardSettings,
    names: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score every named source (all by default) and return the scorecard as a dict."""
    rows: list[Row] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="saymap-scorecard-") as tmp:
        for source in sources(names):
            if progress is not None:
                progress(source.name)
            scorer = score_dubai if source.kind == "dubai" else score_layer_source
            rows += scorer(model, source, root, settings, Path(tmp))
    summary = pooled(rows)
    buildings = [
        r
        for r in summary
        if r.class_name == "building" and r.source.startswith(("kampala", "hot_"))
    ]
    pooled_orthos = Counts()
    for r in buildings:
        pooled_orthos += r.counts
    return {
        "model": str(getattr(model.config, "name", "?")),
        "checkpoint": str(getattr(model, "checkpoint_path", "")),
        "settings": {
            "gsd": settings.gsd,
            "literal": settings.literal,
            "threshold": settings.threshold,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "pooled_orthophoto_building_iou": round(pooled_orthos.iou, 4),
        "sources": [r.to_dict() for r in summary],
        "blocks": [r.to_dict() for r in rows],
    }


def markdown_table(card: dict[str, Any], title: str | None = None) -> str:
    """Rows per source × class (and per block where a source has several)."""
    lines = [f"**{title}**", ""] if title else []
    lines += [
        "| source | block | class | IoU | precision | recall | polygons |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    blocks = {}
    for b in card["blocks"]:
        blocks.setdefault((b["source"], b["class"]), []).append(b)
    for row in card["sources"]:
        lines.append(
            f"| {row['source']} | all | {row['class']} | {row['iou']:.3f} | "
            f"{row['precision']:.3f} | {row['recall']:.3f} | {row['polygons']} |"
        )
        parts = blocks.get((row["source"], row["class"]), [])
        if 1 < len(parts) <= 3:
            for b in parts:
                lines.append(
                    f"| {b['source']} | {b['block']} | {b['class']} | {b['iou']:.3f} | "
                    f"{b['precision']:.3f} | {b['recall']:.3f} | {b['polygons']} |"
                )
    lines.append("")
    lines.append(
        "Pooled building IoU over the kampala and hot_* orthophoto hold-outs: "
        f"**{card['pooled_orthophoto_building_iou']:.3f}**"
    )
    return "\n".join(lines) + "\n"


def write_scorecard(card: dict[str, Any], json_path: Path, markdown_path: Path | None) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(card, indent=2) + "\n")
    if markdown_path is not None:
        markdown_path.write_text(markdown_table(card))


BENCHMARKS_SECTION = "## Real imagery"


def benchmarks_section(card: dict[str, Any], command: str, machine: str, commit: str) -> str:
    """The "Real imagery" section of BENCHMARKS.md: the scorecard of the model it names."""
    return (
        f"{BENCHMARKS_SECTION}\n\n"
        "`saymap scorecard` runs the whole pipeline (working resolution, tiles, blend, "
        "polygons) on the real hold-outs that training never touches (the east 25 % of every "
        "labelled raster in ../shared/data/real, and dubai_landcover's tile_7), with each "
        "class name as the prompt, and scores the polygons rasterised against the labels.\n\n"
        f"Model `{card['model']}` ({card['checkpoint']}), commit {commit}, on {machine}; "
        f"{card['seconds']:.0f} s. Command: `{command}`.\n\n" + markdown_table(card)
    )


def replace_section(text: str, section: str, heading: str = BENCHMARKS_SECTION) -> str:
    """`text` with the section under `heading` (up to the next "## ") replaced or appended."""
    start = text.find(heading + "\n")
    if start < 0:
        return text.rstrip() + "\n\n" + section.rstrip() + "\n"
    end = text.find("\n## ", start + len(heading))
    tail = text[end:] if end >= 0 else "\n"
    return text[:start] + section.rstrip() + "\n" + tail


def _strip_sentences(source: RealSource, root: Path, gsd_m: float, chip_size: int):
    """Sentence samples (computed from the polygons) on chips wholly inside the hold-out
    strips of one source, cut on the working grid; the chip side shrinks (to a multiple of
    32) where a strip is narrower than `chip_size`."""
    from saymap.training.datasets import LayerSource, LayerSubset, build_layer_dataset

    parts = []
    for relative in source.rasters:
        path = root / relative
        with rasterio.open(path) as src:
            strip = holdout_window(src.width, src.height)
            scale = gsd_m / max(abs(src.transform.a), 1e-12)
        size = min(chip_size, int(strip.width / scale) // 32 * 32)
        if size < 64:
            continue
        built = build_layer_dataset(
            [LayerSource(path)],
            root / source.labels,
            class_field=source.class_field,
            class_name=source.class_name,
            chip_size=size,
            group=True,
            sentences_from_geometry=True,
            gsd_m=gsd_m,
            exclude_holdouts=False,  # the hold-out is exactly what is scored here
        )
        spec = built.specs[0]
        native = spec.native
        first = holdout_window(native.width if native else spec.width, 1).col_off
        first_working = first / (native.scale if native else 1.0)
        keep = [
            k for k, r in enumerate(built.records) if r.kind == "full" and r.col >= first_working
        ]
        if keep:
            parts.append(LayerSubset(built, keep))
    return parts


def sentence_scorecard(
    model: Any, root: Path, names: Iterable[str] | None, chip_size: int = 256
) -> dict[str, Any]:
    """mIoU and oIoU by sentence kind ("the largest building", "buildings larger than
    200 m²", ...) on the hold-out strips, at the model card's working resolution."""
    from saymap.training.data_sources import ConcatDataset
    from saymap.training.evaluate import evaluate

    gsd_m = CardResolution.from_card(getattr(model, "card", None)).gsd_m or 0.3
    parts = []
    for source in sources(names):
        if source.kind == "layer":
            parts += _strip_sentences(source, root, gsd_m, chip_size)
    dataset = ConcatDataset(parts)
    if len(dataset) == 0:
        return {"by_kind": {}, "n": 0}
    result = evaluate(model, dataset, batch_size=4)
    return {
        "gsd_m": gsd_m,
        "n": len(dataset),
        "by_kind": {
            kind: {"n": m.n, "miou": round(m.miou, 4), "oiou": round(m.oiou, 4)}
            for kind, m in result.by_type.items()
        },
    }


def sentence_table(scores: dict[str, Any]) -> str:
    lines = ["| sentence kind | samples | mIoU | oIoU |", "|---|---:|---:|---:|"]
    for kind, m in scores.get("by_kind", {}).items():
        lines.append(f"| {kind} | {m['n']} | {m['miou']:.3f} | {m['oiou']:.3f} |")
    return "\n".join(lines) + "\n"
