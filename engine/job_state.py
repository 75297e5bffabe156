"""The resumable state of a collection job, kept beside its output in `<output>.saymap-job/`.

`manifest.json` says what the job is and, per finished unit, `units/unit_00003.tif` and
`done/unit_00003.json`, each written under a temporary name and renamed, so a killed run
leaves only whole files and a re-run of the same job skips the done units. Only what changes
the probabilities is in the manifest (inputs, prompts, model, tile, bands, resolution, AOI):
threshold and clean-up apply at the merge and may change between runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saymap.engine.collection import Layout
from saymap.engine.errors import OutputError
from saymap.engine.plan import ModelFacts, SegmentOptions

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
WORK_SUFFIX = ".saymap-job"


def work_dir_for(output_path: str | os.PathLike[str]) -> Path:
    """The job's folder beside its output: `<output>.saymap-job`."""
    output = Path(output_path)
    return output.with_name(output.name + WORK_SUFFIX)


def _file_identity(path: str) -> list[Any]:
    stat = os.stat(path)
    return [path, stat.st_size, stat.st_mtime_ns]


def job_manifest(
    rasters: Sequence[str],
    prompts: Sequence[str],
    options: SegmentOptions,
    model: ModelFacts,
    layout: Layout,
    block_px: int,
) -> dict[str, Any]:
    """What the job is, as JSON values: a re-run with an equal manifest resumes."""
    card = json.dumps(model.card or {}, sort_keys=True, default=str)
    aoi = options.aoi
    return json.loads(  # as it reads back from the file, for comparison
        json.dumps(
            {
                "version": MANIFEST_VERSION,
                "rasters": [_file_identity(r) for r in rasters],
                "prompts": list(prompts),
                "model": {"name": model.name, "card": hashlib.sha256(card.encode()).hexdigest()},
                "options": {
                    "tile": options.tile,
                    "overlap": options.overlap,
                    "bands": list(options.bands) if options.bands else None,
                    "assume_crs": options.assume_crs,
                    "gsd": str(options.gsd) if options.gsd is not None else None,
                    "literal": options.literal,
                    "aoi": [aoi.geometry.wkt, aoi.crs] if aoi is not None else None,
                },
                "block_px": block_px,
                "units": [[u.index, u.group, u.raster, list(u.bounds)] for u in layout.units],
            }
        )
    )


def read_manifest(work: Path) -> dict[str, Any] | None:
    """The folder's manifest; None when there is none, {} when it cannot be read."""
    try:
        return json.loads((work / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # unreadable: another job as far as resuming goes


def check_resumable(work: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    """OutputError when the folder holds another job and --overwrite was not given."""
    if overwrite or not work.exists():
        return
    found = read_manifest(work)
    if found != manifest:
        raise OutputError(
            f"{work} holds another job (other inputs, prompts, model or options); remove that "
            "folder, or pass --overwrite to start this one again"
        )


def atomic_json(path: Path, value: Any) -> None:
    """Written under a temporary name and renamed: a reader sees all of it or nothing."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temp.write_text(json.dumps(value, indent=1), encoding="utf-8")
    os.replace(temp, path)


def unit_name(index: int) -> str:
    return f"unit_{index:05d}"


def prepare_work(work: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    """Rank 0: the job folder with this job's manifest; an older job's folder is cleared
    first (with --overwrite, as planning allowed)."""
    if work.exists() and read_manifest(work) != manifest:
        if not overwrite:  # it changed since planning
            check_resumable(work, manifest, False)
        shutil.rmtree(work)
    (work / "units").mkdir(parents=True, exist_ok=True)
    (work / "done").mkdir(exist_ok=True)
    if read_manifest(work) != manifest:
        atomic_json(work / MANIFEST, manifest)


def done_markers(work: Path) -> dict[int, dict[str, Any]]:
    """Unit index → its done marker; a marker that cannot be read leaves its unit to run."""
    done: dict[int, dict[str, Any]] = {}
    for path in sorted((work / "done").glob("unit_*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            marker = json.loads(path.read_text(encoding="utf-8"))
            done[int(marker["index"])] = marker
    return done
