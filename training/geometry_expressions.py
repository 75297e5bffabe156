"""Full sentences for real imagery, computed from a label layer's polygons alone.

WREL needs full sentences where analysts' layers give class names: "the largest building",
"the building in the top left corner", "the building left of the largest building", "the 3
largest buildings", "buildings larger than 200 m²". `resolve` parses a sentence back and
evaluates it without knowing how the generator chose it, so a test proves each sentence
picks out exactly its targets. Only sentences that hold with a margin are generated.

The chip edge: every polygon touching the chip is in its scene. Only polygons wholly inside
are described (targets, anchors); a cut one still competes (by its full area, by where its
visible part lies), "all <class>" includes its visible part (what the image shows), and a
cut anchor is named only as the one object of its class ("the road"). Areas are m² in the
local UTM zone whatever the layer's CRS (degrees have no m², Web Mercator's are too large);
places and relations are measured in the chip's own frame (x right, y down) in metres.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from shapely.geometry import Point, box

from saymap.engine.class_names import plural
from saymap.engine.raster import RasterSpec
from saymap.training.chips import ChipRecord, grid
from saymap.training.labels import LabelFeature

SIZE_MARGIN = 1.2  # largest / smallest / N largest: beats the runner-up's area by 20 %
AREA_MARGIN = 0.15  # no area threshold within 15 % of any object's area
AREA_STEPS = (5, 10, 20, 25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500,
              2000, 3000, 5000, 10000)  # fmt: skip
PLACE_MARGIN = 0.05  # share of the chip side a centroid keeps from its region's inner border
NEAR_M = 3.0  # "next to": at most this far apart
FAR_M = 15.0  # "left of", "above"...: at most this gap, so the two read as neighbours
SLACK_M = 3.0  # a relation names its target only if no other object holds with this slack
WHOLE = 1 - 1e-6  # share of a polygon's area inside the chip that counts as wholly inside
MAX_PER_CHIP = 8
_T, _S = 1 / 3, 2 / 3
# (u0, u1, v0, v1): shares of the chip's width and height, v down; 0 and 1 are the chip edge.
PLACES = {"in the top left corner": (0, _T, 0, _T), "in the top right corner": (_S, 1, 0, _T),
          "in the bottom left corner": (0, _T, _S, 1), "in the bottom right corner": (_S, 1, _S, 1),
          "on the left": (0, _T, 0, 1), "on the right": (_S, 1, 0, 1), "at the top": (0, 1, 0, _T),
          "at the bottom": (0, 1, _S, 1), "at the centre": (_T, _S, _T, _S)}  # fmt: skip
RELATIONS = ("left of", "right of", "above", "below", "next to")
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5}
WORDS = {n: w for w, n in NUMBERS.items()}


@dataclass(frozen=True)
class GeometryExpression:
    """A sentence and what it denotes: "weak" is a bare class name pointing at one of its
    instances (WREL's weak label); "full" picks out exactly `target_ids`."""

    text: str
    kind: str  # "weak" or "full"
    expression_type: str  # class, group, largest, smallest, position, relation, n_largest, area
    target_ids: tuple[int, ...]


def noun(class_name: object) -> str:
    """A class value as a sentence says it: "Storage_Tank" -> "storage tank"."""
    return " ".join(str(class_name).replace("_", " ").lower().split())


# -- measuring a chip --------------------------------------------------------------------


@dataclass(frozen=True)
class ChipScene:
    """Every polygon touching a chip, measured. `objects` keeps the layer's index (the ids)
    with columns noun, area_m2 (whole polygon), whole, visible_m2, u and v (the visible
    part's centroid as shares of the chip, v down), x0, y0, x1, y1 (its bounds in metres);
    its geometry is the visible part in the chip frame (metres, x right, y down)."""

    objects: gpd.GeoDataFrame
    width_m: float
    height_m: float

    @cached_property
    def _classes(self) -> dict[str, pd.DataFrame]:
        return dict(tuple(pd.DataFrame(self.objects.drop(columns="geometry")).groupby("noun")))

    def of(self, name: str) -> pd.DataFrame:
        """The objects of one class (by its noun), without their shapes."""
        return self._classes[name]

    @cached_property
    def boxes(self) -> np.ndarray:
        """(n, 4) visible bounds x0, y0, x1, y1 in metres, rows in `objects` order."""
        return self.objects[["x0", "y0", "x1", "y1"]].to_numpy()


@lru_cache(maxsize=256)
def _utm(lon: int, lat: int) -> CRS:
    """The UTM zone of a 1° cell (no cell straddles a zone edge); cached, estimating is slow."""
    return gpd.GeoSeries([box(lon, lat, lon + 1, lat + 1)], crs="EPSG:4326").estimate_utm_crs()


def measure_chip(gdf: gpd.GeoDataFrame, chip_box, class_field: str = "class") -> ChipScene:
    """Areas in the local UTM zone, places and shapes in the chip frame (module docstring)."""
    if gdf.crs is None:
        raise ValueError("the label layer has no CRS; areas in m² need one")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    visible = gdf.geometry.intersection(chip_box)
    # Shares of areas in the layer's own units (fine in degrees: only ratios are used).
    inside, total = shapely.area(visible.to_numpy()), shapely.area(gdf.geometry.to_numpy())
    keep = inside > 0
    gdf, visible, inside, total = gdf[keep], visible[keep], inside[keep], total[keep]
    x0, y0, x1, y1 = chip_box.bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    centre = gpd.GeoSeries([Point(cx, cy)], crs=gdf.crs).to_crs("EPSG:4326").iloc[0]
    utm = _utm(int(np.floor(centre.x)), int(np.floor(centre.y)))
    edges = [Point(x0, cy), Point(x1, cy), Point(cx, y0), Point(cx, y1)]
    e = gpd.GeoSeries(edges, crs=gdf.crs).to_crs(utm)
    width_m, height_m = e.iloc[0].distance(e.iloc[1]), e.iloc[2].distance(e.iloc[3])
    sx, sy = width_m / (x1 - x0), height_m / (y1 - y0)
    # Layer CRS -> chip frame: x right, y down, metres (no CRS: a local engineering frame).
    frame = gpd.GeoSeries(visible.to_numpy(), index=gdf.index)
    frame = frame.affine_transform([sx, 0, 0, -sy, -x0 * sx, y1 * sy])
    bounds, centroid = frame.bounds, frame.centroid
    objects = gpd.GeoDataFrame(
        {
            "noun": gdf[class_field].map(noun),
            "area_m2": gdf.geometry.to_crs(utm).area,
            "whole": inside >= total * WHOLE,
            "visible_m2": frame.area,
            "u": centroid.x / width_m,
            "v": centroid.y / height_m,
            "x0": bounds.minx,
            "y0": bounds.miny,
            "x1": bounds.maxx,
            "y1": bounds.maxy,
        },
        geometry=frame,
    )
    return ChipScene(objects, width_m, height_m)


def in_place(objects: pd.DataFrame, place: str, margin: float = 0.0) -> np.ndarray:
    """Whose centroid lies in a region; `margin` > 0 shrinks its inner borders, < 0 grows."""
    u0, u1, v0, v1 = PLACES[place]

    def within(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return ((lo <= 0) | (x >= lo + margin)) & ((hi >= 1) | (x < hi - margin))

    return within(objects["u"].to_numpy(), u0, u1) & within(objects["v"].to_numpy(), v0, v1)


def related(scene: ChipScene, relation: str, anchor: int, slack: float = 0.0) -> set[int]:
    """Ids in `relation` to the anchor: bounding boxes of visible parts for the directions
    (a gap of at most FAR_M, overlapping across), distance for "next to"."""
    o = scene.objects
    k = o.index.get_loc(anchor)
    if relation == "next to":
        near = NEAR_M + slack
        hits = o.sindex.query(o.geometry.iloc[k], predicate="dwithin", distance=near)
        return {int(i) for i in o.index[hits]} - {anchor}
    (x0, y0, x1, y1), (ax0, ay0, ax1, ay1) = scene.boxes.T, scene.boxes[k]
    if relation in ("left of", "right of"):
        gap = ax0 - x1 if relation == "left of" else x0 - ax1
        across = (y0 < ay1 + slack) & (y1 > ay0 - slack)
    elif relation in ("above", "below"):
        gap = ay0 - y1 if relation == "above" else y0 - ay1
        across = (x0 < ax1 + slack) & (x1 > ax0 - slack)
    else:
        raise ValueError(f"unknown relation {relation!r}")
    ok = (gap >= -slack) & (gap <= FAR_M + slack) & across
    return {int(i) for i in o.index[ok]} - {anchor}


# -- the generator -------------------------------------------------------------------------


def _superlatives(members: pd.DataFrame) -> dict[str, int]:
    """The id a person would pick at a glance as "largest" / "smallest", where there is one;
    the smallest also needs every cut object's visible part to look larger."""
    out: dict[str, int] = {}
    if len(members) < 2:
        return out
    by = members.sort_values("area_m2", ascending=False)
    if by["whole"].iloc[0] and by["area_m2"].iloc[0] >= SIZE_MARGIN * by["area_m2"].iloc[1]:
        out["largest"] = int(by.index[0])
    low = by["area_m2"].iloc[-1]
    cut = members[~members["whole"]]
    if (
        by["whole"].iloc[-1]
        and by["area_m2"].iloc[-2] >= SIZE_MARGIN * low
        and (cut["visible_m2"] >= SIZE_MARGIN * low).all()  # no cut part looks smaller
    ):
        out["smallest"] = int(by.index[-1])
    return out


def _area_sets(members: pd.DataFrame) -> dict[tuple[str, tuple[int, ...]], list[int]]:
    """(larger|smaller, ids) -> the thresholds that give that set with the margin."""
    areas, whole = members["area_m2"].to_numpy(), members["whole"].to_numpy()
    cut_visible = members["visible_m2"].to_numpy()[~whole]
    out: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    for thr in AREA_STEPS:
        if (np.abs(areas - thr) <= AREA_MARGIN * areas).any():
            continue
        for word, chosen in (("larger", areas > thr), ("smaller", areas < thr)):
            if not 0 < chosen.sum() < len(areas) or not whole[chosen].all():
                continue
            if word == "smaller" and (cut_visible < (1 + AREA_MARGIN) * thr).any():
                continue  # a cut object that looks small but is not in the set
            ids = tuple(sorted(int(i) for i in members.index[chosen]))
            out.setdefault((word, ids), []).append(thr)
    return out


def _for_class(scene: ChipScene, name: str, rng: np.random.Generator):
    """(type, text, ids) of every sentence about one class alone."""
    members = scene.of(name)
    whole = members[members["whole"]]
    if len(whole):
        yield "class", name, (int(rng.choice(whole.index)),)
    if len(members) < 2:
        return
    many = plural(name)
    yield "group", f"all {many}", tuple(int(i) for i in members.index)
    for sup, tid in _superlatives(members).items():
        yield sup, f"the {sup} {name}", (tid,)
    by = members.sort_values("area_m2", ascending=False)
    for n in range(2, min(5, len(by) - 1) + 1):
        top = by.iloc[:n]
        if top["whole"].all() and by["area_m2"].iloc[n - 1] >= SIZE_MARGIN * by["area_m2"].iloc[n]:
            word = WORDS[n] if rng.random() < 0.5 else str(n)
            yield "n_largest", f"the {word} largest {many}", tuple(int(i) for i in top.index)
    for (word, ids), thresholds in _area_sets(members).items():
        thr = thresholds[int(rng.integers(len(thresholds)))]
        unit = "m²" if rng.random() < 0.5 else "square metres"
        yield "area", f"{many} {word} than {thr} {unit}", ids
    for place in PLACES:
        inner = members[in_place(members, place, PLACE_MARGIN)]
        near = members[in_place(members, place, -PLACE_MARGIN)]
        if len(inner) == 1 and len(near) == 1 and inner["whole"].iloc[0]:
            yield "position", f"the {name} {place}", (int(inner.index[0]),)


def _relations(scene: ChipScene, names: list[str]):
    """(type, text, ids) for "the <class> <relation> <anchor>" that pick exactly one."""
    anchors = {f"the {n}": int(scene.of(n).index[0]) for n in names if len(scene.of(n)) == 1}
    for n in names:
        for sup, aid in _superlatives(scene.of(n)).items():
            anchors[f"the {sup} {n}"] = aid
    whole = scene.objects["whole"]
    members = {n: {int(i) for i in scene.of(n).index} for n in names}
    for phrase, aid in anchors.items():
        for rel in RELATIONS:
            strict, loose = related(scene, rel, aid), related(scene, rel, aid, SLACK_M)
            for n, ids in members.items():
                target = strict & ids
                if len(target) == 1 and target == loose & ids and whole[next(iter(target))]:
                    yield "relation", f"the {n} {rel} {phrase}", tuple(target)


def expressions_for_chip(
    gdf_in_chip: gpd.GeoDataFrame,
    chip_box,
    class_field: str = "class",
    rng: np.random.Generator | None = None,
    max_per_chip: int | None = MAX_PER_CHIP,
) -> list[GeometryExpression]:
    """Sentences about the polygons of one chip (`chip_box` in the layer's CRS; the index
    holds integer ids), at most `max_per_chip`, drawn in turn from each expression type."""
    scene = measure_chip(gdf_in_chip, chip_box, class_field)
    return expressions_for_scene(scene, rng, max_per_chip)


def expressions_for_scene(
    scene: ChipScene,
    rng: np.random.Generator | None = None,
    max_per_chip: int | None = MAX_PER_CHIP,
) -> list[GeometryExpression]:
    """expressions_for_chip on a chip already measured (its caller may resolve on it too)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    names = sorted(set(scene.objects["noun"]))
    found: dict[str, list[GeometryExpression]] = {}
    for n in names:
        for kind, text, ids in _for_class(scene, n, rng):
            weak = "weak" if kind == "class" else "full"
            found.setdefault(kind, []).append(GeometryExpression(text, weak, kind, ids))
    for kind, text, ids in _relations(scene, names):
        found.setdefault(kind, []).append(GeometryExpression(text, "full", kind, ids))
    order = sorted(found)
    rng.shuffle(order)  # then one of each type in turn, so a cap keeps the variety
    queues = [[found[k][i] for i in rng.permutation(len(found[k]))] for k in order]
    out = [q[j] for j in range(max(map(len, queues), default=0)) for q in queues if j < len(q)]
    return out if max_per_chip is None else out[:max_per_chip]


# -- the resolver ------------------------------------------------------------------------


def denote(text: str, scene: ChipScene) -> set[int]:
    """The ids a sentence of this grammar denotes in a measured chip."""
    o = scene.objects
    names = sorted(set(o["noun"]), key=len, reverse=True)
    plurals = {plural(n): n for n in names}
    text = " ".join(text.split())

    def ids(frame: pd.DataFrame, mask=None) -> set[int]:
        index = frame.index if mask is None else frame.index[np.asarray(mask)]
        return {int(i) for i in index}

    if text in names:  # a bare class name: every instance (weak)
        return ids(scene.of(text))
    if (m := re.fullmatch(r"all (.+)", text)) and m[1] in plurals:
        return ids(scene.of(plurals[m[1]]))
    if (m := re.fullmatch(r"the (largest|smallest) (.+)", text)) and m[2] in names:
        a = scene.of(m[2])["area_m2"]
        return ids(a, a == (a.max() if m[1] == "largest" else a.min()))
    if (m := re.fullmatch(r"the (\w+) largest (.+)", text)) and m[2] in plurals:
        a = scene.of(plurals[m[2]])["area_m2"]
        n = int(m[1]) if m[1].isdigit() else NUMBERS[m[1]]
        return ids(a, a >= a.nlargest(n).min())
    pattern = r"(.+) (larger|smaller) than ([\d.]+) (?:m²|square metres)"
    if (m := re.fullmatch(pattern, text)) and m[1] in plurals:
        a = scene.of(plurals[m[1]])["area_m2"]
        return ids(a, a > float(m[3]) if m[2] == "larger" else a < float(m[3]))
    rest = text.removeprefix("the ")
    for n in names if text.startswith("the ") else []:
        members = scene.of(n)
        if rest == n:
            return ids(members)
        if not rest.startswith(n + " "):
            continue
        tail = rest[len(n) + 1 :]
        if tail in PLACES:
            return ids(members, in_place(members, tail))
        for rel in RELATIONS:
            if tail.startswith(rel + " "):
                anchor = denote(tail[len(rel) + 1 :], scene)
                if len(anchor) != 1:  # an ambiguous anchor names nothing
                    return set()
                return related(scene, rel, next(iter(anchor))) & ids(members)
    raise ValueError(f"not a sentence of the geometry grammar: {text!r}")


def resolve(
    text: str, gdf_in_chip: gpd.GeoDataFrame, chip_box, class_field: str = "class"
) -> set[int]:
    """The ids a sentence denotes in a chip: its plain meaning, no margins, no targets."""
    return denote(text, measure_chip(gdf_in_chip, chip_box, class_field))


# -- layer datasets --------------------------------------------------------------------


def chip_records(
    raster: int,
    spec: RasterSpec,
    features: list[LabelFeature],
    size: int,
    skip_group: bool = False,
) -> list[ChipRecord]:
    """Full samples from generated sentences on the grid chips of one raster; each mask is
    its targets' parts inside the chip. Seeded per chip, so the list is reproducible."""
    stem = Path(spec.path).stem
    tree = shapely.STRtree([f.geometry for f in features])
    crs = spec.crs.to_wkt()
    records = []
    for row in grid(spec.height, size):
        for col in grid(spec.width, size):
            tile = box(*window_bounds(Window(col, row, size, size), spec.transform))
            hits = tree.query(tile, predicate="intersects")
            if not len(hits):
                continue
            ids = hits.tolist()
            classes = pd.Series([features[k].class_name for k in ids], ids)
            shapes = gpd.GeoSeries([features[k].geometry for k in ids], ids, crs)
            gdf = gpd.GeoDataFrame({"class": classes}, geometry=shapes)
            rng = np.random.default_rng([raster, row, col])
            for n, e in enumerate(expressions_for_chip(gdf, tile, "class", rng)):
                if e.kind != "full" or (skip_group and e.expression_type == "group"):
                    continue
                geoms = tuple(features[k].geometry.intersection(tile) for k in e.target_ids)
                cls = features[e.target_ids[0]].class_name
                kind, sid = e.expression_type, f"{stem}/r{row}c{col}/{e.expression_type}{n}"
                records.append(
                    ChipRecord(raster, col, row, size, geoms, e.text, "full", kind, cls, sid)
                )
    return records
