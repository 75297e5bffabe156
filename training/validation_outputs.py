"""What a trained model keeps of its validation: the chips it was scored on, and its
predictions over the validation area as GeoPackages.

The chips are a chip folder, so `saymap eval --checkpoint MODEL --data MODEL/validation/chips`
scores the model on exactly the samples the training job reported. The predictions are
`segment_raster` over the area (a spatial split) or over the validation chips' footprint
(a split by feature), one GeoPackage per raster, so the analyst sees what the model does
where it was not trained.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import shapely
from shapely.geometry import box

from saymap.engine.aoi import AOI
from saymap.engine.prompt import MAX_PROMPTS  # the segment request's own limit
from saymap.engine.registry import VALIDATION_DIR
from saymap.training.chips import write_chips
from saymap.training.datasets import LayerSubset

log = logging.getLogger(__name__)
CHIPS_DIR = "chips"


@dataclass(frozen=True)
class ValidationOutputs:
    chips: Path
    predictions: tuple[Path, ...]


def validation_prompts(val_set: LayerSubset) -> list[str]:
    """The class names validated on (what an analyst types), at most MAX_PROMPTS."""
    records = [val_set.dataset.records[k] for k in val_set.indices]
    names = sorted({r.class_name for r in records if r.class_name})
    if len(names) > MAX_PROMPTS:
        log.warning("predicting %d of %d validation classes", MAX_PROMPTS, len(names))
    return names[:MAX_PROMPTS]


def prediction_areas(val_set: LayerSubset, area: AOI | None) -> dict[int, AOI]:
    """Per raster index with validation chips: the area to predict over."""
    built = val_set.dataset
    footprints: dict[int, list] = {}
    for k in val_set.indices:
        r = built.records[k]
        t = built.specs[r.raster].transform
        chip = box(r.col, r.row, r.col + r.size, r.row + r.size)
        footprints.setdefault(r.raster, []).append(
            shapely.affinity.affine_transform(chip, [t.a, t.b, t.d, t.e, t.c, t.f])
        )
    if area is not None:
        return dict.fromkeys(sorted(footprints), area)
    return {
        raster: AOI(shapely.union_all(parts), None, "the validation chips")
        for raster, parts in sorted(footprints.items())
    }


def write_validation(
    model_dir: Path,
    val_set: LayerSubset,
    area: AOI | None,
    *,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> ValidationOutputs:
    """Write MODEL/validation/chips and MODEL/validation/predictions-<raster>.gpkg."""
    from saymap.engine.infer import SegmentOptions, segment_raster
    from saymap.engine.model import load_model

    folder = Path(model_dir) / VALIDATION_DIR
    folder.mkdir(exist_ok=True)
    chips = folder / CHIPS_DIR
    write_chips(val_set, chips)
    prompts = validation_prompts(val_set)
    model = load_model(model_dir, device="cpu")
    outputs: list[Path] = []
    stems: set[str] = set()
    for raster, where in prediction_areas(val_set, area).items():
        spec = val_set.dataset.specs[raster]
        stem = Path(spec.path).stem
        stem = stem if stem not in stems else f"{stem}-{raster}"
        stems.add(stem)
        output = folder / f"predictions-{stem}.gpkg"

        def report(done: int, total: int, message: str, name: str = stem) -> None:
            if progress is not None:
                progress(f"predicting the validation area of {name}: {message}")

        segment_raster(
            spec.path,
            prompts,
            output,
            model=model,
            options=SegmentOptions(aoi=where, device=device),
            progress=report,
            cancel=cancel,
        )
        outputs.append(output)
    return ValidationOutputs(chips, tuple(outputs))
