"""Rank 0's merge of a finished collection job into one GeoPackage.

Per group, a VRT over the units' probabilities, each cropped to the unit's owned window on
the group's working grid (so crops tile exactly), is vectorised once, so an object across a
raster or block edge is one polygon; groups in another CRS are reprojected to the output
CRS; all of it goes into one GeoPackage, atomically. Kept probabilities are one GeoTIFF per
group, in the group's CRS (output.probability_paths).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import shapely
from pyproj import CRS as ProjCRS
from rasterio.windows import Window
from shapely.geometry import box

from saymap.engine.collection import Unit
from saymap.engine.collection_plan import CollectionPlan, GroupPlan, UnitPlan, Window4
from saymap.engine.errors import OutputError
from saymap.engine.job_state import done_markers
from saymap.engine.output import GeoPackageWriter, probability_paths
from saymap.engine.timing import StageTimes
from saymap.engine.vectorize import Destination, vectorize_to_geopackage

GDAL_CACHE_BYTES = 16 * 1024 * 1024  # as the pipeline's (infer.py)


def _source_of(units: Sequence[Unit]) -> Callable[[np.ndarray], list[str]]:
    """Polygons (group CRS) → the raster of the unit whose owned area holds each one's
    representative point (the earliest unit where owned areas overlap; else the nearest)."""
    boxes = np.array([box(*u.bounds) for u in units], dtype=object)
    tree = shapely.STRtree(boxes)

    def source_of(geometries: np.ndarray) -> list[str]:
        points = shapely.point_on_surface(np.asarray(geometries, dtype=object))
        found: list[str] = []
        for point in points:
            hits = tree.query(point, predicate="intersects")
            index = int(hits.min()) if len(hits) else int(tree.nearest(point))
            found.append(units[index].raster)
        return found

    return source_of


def _group_vrt(
    path: Path, group: GroupPlan, units: Sequence[tuple[UnitPlan, dict[str, Any]]], bands: int
) -> Window4 | None:
    """A float32 VRT over the units' crops on the group's working grid, the earliest unit
    drawn last (it wins where owned areas overlap); None when no unit has pixels."""
    kept = [(u, m) for u, m in units if m.get("file")]
    if not kept:
        return None
    col0 = min(m["crop"][0] for _, m in kept)
    row0 = min(m["crop"][1] for _, m in kept)
    col1 = max(m["crop"][0] + m["crop"][2] for _, m in kept)
    row1 = max(m["crop"][1] + m["crop"][3] for _, m in kept)
    t = group.plan.spec.transform @ rasterio.Affine.translation(col0, row0)
    geotransform = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    lines = [
        f'<VRTDataset rasterXSize="{col1 - col0}" rasterYSize="{row1 - row0}">',
        f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(group.crs_wkt)}</SRS>',
        f"  <GeoTransform>{geotransform}</GeoTransform>",
    ]
    for band in range(1, bands + 1):
        lines.append(f'  <VRTRasterBand dataType="Float32" band="{band}">')
        for _, marker in sorted(kept, key=lambda um: -um[0].unit.index):
            c, r, w, h = marker["crop"]
            sc, sr = c - marker["region"][0], r - marker["region"][1]
            lines += [
                "    <SimpleSource>",
                f'      <SourceFilename relativeToVRT="1">{escape(marker["file"])}'
                "</SourceFilename>",
                f"      <SourceBand>{band}</SourceBand>",
                f'      <SrcRect xOff="{sc}" yOff="{sr}" xSize="{w}" ySize="{h}"/>',
                f'      <DstRect xOff="{c - col0}" yOff="{r - row0}" xSize="{w}" ySize="{h}"/>',
                "    </SimpleSource>",
            ]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return col0, row0, col1 - col0, row1 - row0


def _copy_probabilities(vrt: Path, target: Path) -> None:
    """A group's merged probabilities as a GeoTIFF the user keeps (DEFLATE, which every
    GDAL reads), copied window by window."""
    with rasterio.open(vrt) as src:
        profile = {
            "driver": "GTiff", "dtype": "float32", "count": src.count, "width": src.width,
            "height": src.height, "crs": src.crs, "transform": src.transform, "tiled": True,
            "blockxsize": 512, "blockysize": 512, "compress": "deflate", "predictor": 3,
            "BIGTIFF": "IF_SAFER",
        }  # fmt: skip
        with rasterio.open(target, "w", **profile) as dst:
            for row in range(0, src.height, 2048):
                window = Window(0, row, src.width, min(2048, src.height - row))
                dst.write(src.read(window=window), window=window)


def merge(
    plan: CollectionPlan,
    output: Path,
    work: Path,
    cancel: threading.Event | None,
    times: StageTimes,
) -> tuple[dict[str, int], int, str]:
    """Rank 0, every unit done: one vectorisation per group into one GeoPackage."""
    from saymap.engine.infer import now_iso

    done = done_markers(work)
    missing = [u.unit.index for u in plan.units if u.unit.index not in done]
    if missing:
        raise OutputError(
            f"{len(missing)} unit(s) of the job in {work} are not done (first: unit "
            f"{missing[0]}); run the same command again to finish them"
        )
    options = plan.options
    common = {"model": plan.model.name, "run_id": uuid.uuid4().hex, "created_at": now_iso()}
    counts = dict.fromkeys(plan.prompts, 0)
    keep = options.probabilities_path
    kept = probability_paths(keep, len(plan.groups)) if keep is not None else None
    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
        times.measure("vectorise"),
        GeoPackageWriter(  # written in the job folder: a kill mid-merge leaves nothing beside it
            output,
            plan.out_crs_wkt,
            options.overwrite,
            layers=list(plan.layers.values()),
            temp_dir=work,
        ) as writer,
    ):
        for k, group in enumerate(plan.groups):
            members = [
                (u, done[u.unit.index]) for u in plan.units if u.unit.group == group.group.index
            ]
            vrt = work / f"group_{group.group.index:04d}.vrt"
            if _group_vrt(vrt, group, members, len(plan.prompts)) is None:
                continue
            if kept is not None:
                _copy_probabilities(vrt, kept[k])
            same = ProjCRS.from_wkt(group.crs_wkt) == ProjCRS.from_wkt(plan.out_crs_wkt)
            destination = Destination(
                layers=plan.layers,
                source_of=_source_of([u.unit for u, _ in members]),
                out_crs_wkt=None if same else plan.out_crs_wkt,
            )
            found = vectorize_to_geopackage(
                vrt, writer, plan.prompts, group.crs_wkt, options.vectorize_options(),
                {**common, "source": ""}, cancel, destination,
            )  # fmt: skip
            for prompt, n in found.items():
                counts[prompt] += n
        features = writer.commit()
    return counts, features, common["run_id"]
