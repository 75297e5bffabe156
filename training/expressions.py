"""Referring expressions in a structured form, the resolver that evaluates them, and text.

Every synthetic sentence comes from a `Query` (class, attribute filters, a 3 x 3 region,
a relation to a uniquely described anchor, a superlative, or "all"). `resolve` evaluates a
query on a scene's object facts alone, without looking at the sentence or at how the
generator chose it, so a test can check that each sentence denotes exactly its mask.

The generator (`expressions_for_scene`) only emits singular queries that resolve to their
one target, and group queries ("all airplanes") that resolve to every member.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

REGIONS = (
    ("top left", "top", "top right"),
    ("left", "center", "right"),
    ("bottom left", "bottom", "bottom right"),
)
RELATIONS = ("left of", "right of", "above", "below", "next to", "on")
SUPERLATIVES = ("largest", "smallest", "leftmost", "rightmost", "topmost", "bottommost")
# Roads and water are stuff: wide, irregular extents whose boxes say little. They are
# anchors only for "on" and never targets of a relation.
STUFF = ("road", "water")
NEAR_PX = 10  # "next to": bounding boxes at most this many pixels apart
FAR_PX = 40  # "left of", "above"...: at most this far, so the two read as neighbours
REGION_MARGIN_PX = 10  # position phrases only for centroids this far from region borders
SUPERLATIVE_MARGIN = 1.3  # largest/smallest: the winner's area beats the runner-up by 30 %
EXTREME_MARGIN_PX = 12  # leftmost/...: the winner beats the runner-up by 12 px

# Area (pixels) that separates "small" from "large" per class; the synthetic layout draws
# sizes on either side of it with a gap, the resolver reads the measured area against it.
SIZE_THRESHOLDS: dict[str, int] = {
    "building": 850,
    "vehicle": 95,
    "ship": 300,
    "storage tank": 380,
    "airplane": 420,
    "tree": 150,
}

PLURALS = {"building": "buildings", "vehicle": "vehicles", "road": "roads", "tree": "trees",
           "water": "water bodies", "storage tank": "storage tanks", "ship": "ships",
           "airplane": "airplanes"}  # fmt: skip
SYNONYMS = {
    "vehicle": ("vehicle", "car"),
    "storage tank": ("storage tank", "tank", "oil tank"),
    "airplane": ("airplane", "plane", "aircraft"),
    "ship": ("ship", "boat", "vessel"),
    "building": ("building", "house"),
    "water": ("water", "water body"),
}


@dataclass(frozen=True)
class ObjectFacts:
    """What the resolver may know of one instance: its labels and its measured geometry.

    Geometry is in pixels, measured from the instance raster: area, centroid (cx, cy),
    bounding box [x0, x1) x [y0, y1), and `support`, the instance it stands on (a vehicle
    on a road), or 0.
    """

    instance_id: int
    class_name: str
    colour: str | None
    shape: str | None
    orientation: str | None
    area: int
    cx: float
    cy: float
    x0: int
    y0: int
    x1: int
    y1: int
    support: int = 0

    @property
    def size(self) -> str | None:
        threshold = SIZE_THRESHOLDS.get(self.class_name)
        if threshold is None:
            return None
        return "large" if self.area >= threshold else "small"


@dataclass(frozen=True)
class Query:
    """The structured form of one expression; `anchor` is the object of a relation."""

    class_name: str
    colour: str | None = None
    shape: str | None = None
    size: str | None = None
    orientation: str | None = None
    region: str | None = None
    relation: str | None = None
    anchor: Query | None = None
    superlative: str | None = None
    group: bool = False

    @property
    def expression_type(self) -> str:
        if self.group:
            return "group"
        if self.superlative:
            return "comparison"
        if self.relation:
            return "relation"
        if self.region:
            return "position"
        if self.colour or self.shape or self.size or self.orientation:
            return "attribute"
        return "class"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Query:
        values = dict(values)
        if values.get("anchor") is not None:
            values["anchor"] = cls.from_dict(values["anchor"])
        return cls(**values)


def region_of(cx: float, cy: float, width: int, height: int) -> str:
    col = min(int(cx * 3 / width), 2)
    row = min(int(cy * 3 / height), 2)
    return REGIONS[row][col]


def _region_margin(obj: ObjectFacts, width: int, height: int) -> float:
    """Distance from the centroid to the nearest inner border of its 3 x 3 cell."""
    edges_x = [width / 3, 2 * width / 3]
    edges_y = [height / 3, 2 * height / 3]
    return min(min(abs(obj.cx - e) for e in edges_x), min(abs(obj.cy - e) for e in edges_y))


def holds(relation: str, t: ObjectFacts, a: ObjectFacts) -> bool:
    """Whether `t` stands in `relation` to anchor `a` (bounding-box geometry)."""
    overlap_y = t.y0 < a.y1 and t.y1 > a.y0
    overlap_x = t.x0 < a.x1 and t.x1 > a.x0
    if relation == "left of":
        return 0 <= a.x0 - t.x1 <= FAR_PX and overlap_y
    if relation == "right of":
        return 0 <= t.x0 - a.x1 <= FAR_PX and overlap_y
    if relation == "above":
        return 0 <= a.y0 - t.y1 <= FAR_PX and overlap_x
    if relation == "below":
        return 0 <= t.y0 - a.y1 <= FAR_PX and overlap_x
    if relation == "next to":
        dx = max(0, a.x0 - t.x1, t.x0 - a.x1)
        dy = max(0, a.y0 - t.y1, t.y0 - a.y1)
        return math.hypot(dx, dy) <= NEAR_PX
    if relation == "on":
        return t.support == a.instance_id
    raise ValueError(f"unknown relation {relation!r}")


def _superlative_key(name: str):
    return {
        "largest": lambda o: o.area,
        "smallest": lambda o: -o.area,
        "leftmost": lambda o: -o.cx,
        "rightmost": lambda o: o.cx,
        "topmost": lambda o: -o.cy,
        "bottommost": lambda o: o.cy,
    }[name]


def resolve(query: Query, objects: list[ObjectFacts], width: int, height: int) -> frozenset[int]:
    """The instance ids a query denotes in a scene: every match (a singular query is
    unambiguous when this has one element). An anchor that is not unique resolves to
    nothing, so a relation to an ambiguous anchor never counts as resolved."""
    found = [
        o
        for o in objects
        if o.class_name == query.class_name
        and (query.colour is None or o.colour == query.colour)
        and (query.shape is None or o.shape == query.shape)
        and (query.size is None or o.size == query.size)
        and (query.orientation is None or o.orientation == query.orientation)
        and (query.region is None or region_of(o.cx, o.cy, width, height) == query.region)
    ]
    if query.relation is not None:
        if query.anchor is None:
            raise ValueError("a relation needs an anchor")
        anchors = resolve(query.anchor, objects, width, height)
        if len(anchors) != 1:
            return frozenset()
        (anchor_id,) = anchors
        anchor = next(o for o in objects if o.instance_id == anchor_id)
        found = [
            o for o in found if o.instance_id != anchor_id and holds(query.relation, o, anchor)
        ]
    if query.superlative is not None and found:
        key = _superlative_key(query.superlative)
        best = max(key(o) for o in found)
        found = [o for o in found if key(o) == best]
    return frozenset(o.instance_id for o in found)


# -- text ---------------------------------------------------------------------------


def _noun(class_name: str, rng: np.random.Generator, plural: bool = False) -> str:
    if plural:
        return PLURALS.get(class_name, class_name + "s")
    names = SYNONYMS.get(class_name, (class_name,))
    # The canonical name half the time, so the weak and full vocabularies overlap.
    return names[0] if rng.random() < 0.5 else names[int(rng.integers(len(names)))]


def _region_phrase(region: str) -> str:
    if region == "center":
        return "in the center"
    if region in ("left", "right"):
        return f"on the {region}"
    if region in ("top", "bottom"):
        return f"at the {region}"
    return f"in the {region}"


def _relation_phrase(relation: str, anchor: Query) -> str:
    target = describe_plain(anchor)
    if relation == "on":
        return f"on the {target}" if anchor.class_name == "road" else f"on {target}"
    if relation in ("above", "below"):
        word = "north" if relation == "above" else "south"
        return f"{word} of the {target}"
    return f"{relation} the {target}"


def describe_plain(query: Query) -> str:
    """A deterministic noun phrase for an anchor ("large white building")."""
    words = [query.size, query.colour, query.shape, query.orientation, query.class_name]
    return " ".join(w for w in words if w)


def describe(query: Query, rng: np.random.Generator) -> str:
    """Render a query as an RRSIS-style sentence, with some variation in wording."""
    noun = _noun(query.class_name, rng, plural=query.group)
    adjectives = [query.size, query.colour, query.shape]
    if query.orientation and rng.random() < 0.5:
        adjectives.append(query.orientation)
        orient_tail = ""
    else:
        orient_tail = f" oriented {query.orientation}ly" if query.orientation else ""
    head = " ".join([a for a in adjectives if a] + [noun])
    if query.group:
        return f"all {head}{orient_tail}"
    if query.superlative:
        sup = query.superlative
        if sup in ("leftmost", "rightmost") and rng.random() < 0.5:
            side = "left" if sup == "leftmost" else "right"
            return f"the {head} furthest to the {side}"
        return f"the {sup} {head}"
    text = f"the {head}{orient_tail}"
    if query.region:
        text += " " + _region_phrase(query.region)
    if query.relation and query.anchor is not None:
        text += " " + _relation_phrase(query.relation, query.anchor)
    return text


# -- the generator's choice -------------------------------------------------------------

ATTRIBUTES = ("colour", "shape", "size", "orientation")


@dataclass(frozen=True)
class Expression:
    text: str
    kind: str  # "weak" or "full"
    query: Query
    instance_ids: tuple[int, ...]

    @property
    def expression_type(self) -> str:
        return self.query.expression_type


def _unique(query: Query, target: ObjectFacts, objects: list[ObjectFacts], w: int, h: int) -> bool:
    return resolve(query, objects, w, h) == frozenset({target.instance_id})


def _attribute_queries(t: ObjectFacts) -> list[Query]:
    base = Query(t.class_name)
    values = {a: (t.size if a == "size" else getattr(t, a)) for a in ATTRIBUTES}
    singles = [replace(base, **{a: v}) for a, v in values.items() if v]
    pairs = [
        replace(base, **{a: values[a], b: values[b]})
        for i, a in enumerate(ATTRIBUTES)
        for b in ATTRIBUTES[i + 1 :]
        if values[a] and values[b]
    ]
    return singles + pairs


def _anchor_query(a: ObjectFacts, objects: list[ObjectFacts], w: int, h: int) -> Query | None:
    """The shortest query (class, then class + one attribute) naming `a` alone."""
    for q in [Query(a.class_name), *_attribute_queries(a)[:4]]:
        if _unique(q, a, objects, w, h):
            return q
    return None


def candidate_queries(
    t: ObjectFacts, objects: list[ObjectFacts], width: int, height: int
) -> dict[str, list[Query]]:
    """Every unambiguous full query for target `t`, grouped by expression type."""
    same = [o for o in objects if o.class_name == t.class_name]
    out: dict[str, list[Query]] = {}
    if len(same) == 1:
        out["class"] = [Query(t.class_name)]
    else:
        attrs = [q for q in _attribute_queries(t) if _unique(q, t, objects, width, height)]
        if attrs:
            # Prefer the fewest words: single attributes when one suffices.
            n_min = min(len(q.to_dict()) for q in attrs)
            out["attribute"] = [q for q in attrs if len(q.to_dict()) == n_min]
        region = region_of(t.cx, t.cy, width, height)
        q = Query(t.class_name, region=region)
        if _region_margin(t, width, height) >= REGION_MARGIN_PX and _unique(
            q, t, objects, width, height
        ):
            out["position"] = [q]
        sups = []
        for sup in SUPERLATIVES:
            q = Query(t.class_name, superlative=sup)
            if _unique(q, t, objects, width, height) and _clear_winner(sup, t, same):
                sups.append(q)
        if sups:
            out["comparison"] = sups
    relations = []
    for a in objects if t.class_name not in STUFF else []:
        if a.class_name == t.class_name:
            continue
        anchor = None
        for rel in RELATIONS if a.class_name not in STUFF else ("on",):
            if not holds(rel, t, a):
                continue
            anchor = anchor or _anchor_query(a, objects, width, height)
            if anchor is None:
                break
            q = Query(t.class_name, relation=rel, anchor=anchor)
            if _unique(q, t, objects, width, height):
                relations.append(q)
    if relations:
        out["relation"] = relations
    return out


def _clear_winner(sup: str, t: ObjectFacts, same: list[ObjectFacts]) -> bool:
    """Only superlatives a person would see at a glance (30 % larger, 12 px further)."""
    others = [o for o in same if o.instance_id != t.instance_id]
    key = _superlative_key(sup)
    runner_up = max(key(o) for o in others)
    if sup in ("largest", "smallest"):
        a, b = abs(key(t)), abs(runner_up)
        return a >= SUPERLATIVE_MARGIN * b if sup == "largest" else b >= SUPERLATIVE_MARGIN * a
    return key(t) - runner_up >= EXTREME_MARGIN_PX


def expressions_for_scene(
    objects: list[ObjectFacts],
    targets: list[int],
    width: int,
    height: int,
    rng: np.random.Generator,
) -> list[Expression]:
    """Weak (bare class name) and full expressions for each target, plus groups.

    A weak expression names only the class and points at one target, on purpose: that
    is WREL's weak label and it is ambiguous whenever the class has several instances.
    Each full expression resolves to exactly its instance ids.
    """
    by_id = {o.instance_id: o for o in objects}
    out: list[Expression] = []
    for tid in targets:
        t = by_id[tid]
        out.append(Expression(t.class_name, "weak", Query(t.class_name), (tid,)))
        for queries in candidate_queries(t, objects, width, height).values():
            q = queries[int(rng.integers(len(queries)))]
            out.append(Expression(describe(q, rng), "full", q, (tid,)))
    classes = sorted({o.class_name for o in objects})
    for c in classes:
        members = sorted(o.instance_id for o in objects if o.class_name == c)
        if len(members) >= 2 and c != "water":
            q = Query(c, group=True)
            out.append(Expression(describe(q, rng), "full", q, tuple(members)))
            colours = {by_id[m].colour for m in members} - {None}
            for colour in sorted(colours):
                qc = Query(c, colour=colour, group=True)
                ids = resolve(qc, objects, width, height)
                if 2 <= len(ids) < len(members):
                    out.append(Expression(describe(qc, rng), "full", qc, tuple(sorted(ids))))
    return out
