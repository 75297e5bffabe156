"""Where things are in a synthetic scene: themes, object placement, the instance raster.

Pure numpy and a seeded generator. Each object is drawn as a boolean mask over its own
bounding box (vectorised, no per-pixel loops); placement refuses overlaps so every pixel
belongs to one instance, and objects stay wholly inside the scene so their measured size
matches what the eye sees. Attributes (colour, shape, size, orientation) are drawn here;
geometry for the expressions is measured later from the instance raster itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

CLASSES = ("building", "vehicle", "road", "tree", "water", "storage tank", "ship", "airplane")

COLOURS: dict[str, tuple[str, ...]] = {
    "building": ("red", "white", "grey", "blue", "brown"),
    "vehicle": ("white", "black", "red", "blue", "grey", "yellow"),
    "ship": ("white", "grey", "red"),
    "storage tank": ("white", "grey"),
    "airplane": ("white", "grey"),
}
ORIENTED = {"vehicle", "ship", "airplane", "building"}  # buildings only when long

# (min, max) of the drawn dimensions in pixels for the "small" and "large" categories;
# the gap between them straddles expressions.SIZE_THRESHOLDS.
SIZES: dict[str, dict[str, tuple[tuple[float, float], tuple[float, float]]]] = {
    # class: {size: ((length range), (width range))}
    "building": {"small": ((16, 24), (14, 20)), "large": ((44, 58), (30, 40))},
    "vehicle": {"small": ((9, 11), (5, 6)), "large": ((18, 24), (7, 8))},
    "ship": {"small": ((18, 24), (6, 8)), "large": ((44, 58), (12, 15))},
    "storage tank": {"small": ((12, 17), (0, 0)), "large": ((27, 36), (0, 0))},
    "airplane": {"small": ((24, 30), (0, 0)), "large": ((44, 56), (0, 0))},
    "tree": {"small": ((8, 11), (0, 0)), "large": ((17, 22), (0, 0))},
}

# theme: {class: (min count, max count)} for a 256 x 256 scene; bigger scenes scale up.
THEMES: dict[str, dict[str, tuple[int, int]]] = {
    "urban": {"road": (1, 2), "building": (3, 6), "vehicle": (3, 7), "tree": (3, 8),
              "storage tank": (0, 1)},
    "port": {"water": (1, 1), "ship": (2, 4), "storage tank": (2, 5), "building": (1, 3),
             "road": (0, 1), "vehicle": (0, 3), "tree": (0, 3)},
    "airport": {"road": (1, 1), "airplane": (2, 4), "vehicle": (2, 4), "building": (1, 2),
                "storage tank": (0, 2), "tree": (0, 2)},
    "rural": {"water": (1, 1), "tree": (5, 10), "building": (1, 3), "road": (0, 1),
              "vehicle": (1, 3)},
}  # fmt: skip
PLACEMENT_ORDER = ("water", "road", "airplane", "building", "storage tank", "ship", "vehicle",
                   "tree")  # fmt: skip
SHADOW_HEIGHT = {"building": (5, 12), "tree": (4, 8), "storage tank": (4, 8), "vehicle": (1, 2),
                 "airplane": (2, 3), "ship": (1, 2)}  # fmt: skip
CLEARANCE_PX = 3
MAX_TRIES = 40


@dataclass
class PlacedObject:
    """One drawn instance; `mask` covers rows y0:y1 and columns x0:x1 of the scene."""

    instance_id: int
    class_name: str
    cx: float
    cy: float
    length: float
    width: float
    angle: float  # radians, direction of the long axis, image x towards image y
    colour: str | None = None
    shape: str | None = None
    size: str | None = None
    orientation: str | None = None
    height: float = 0.0  # shadow length in pixels
    y0: int = 0
    x0: int = 0
    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    def local_uv(self) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates along (u) and across (v) the long axis, for the local box."""
        return _uv(self.y0, self.x0, *self.mask.shape, self.cx, self.cy, self.angle)


def _uv(y0: int, x0: int, h: int, w: int, cx: float, cy: float, angle: float):
    ys = np.arange(y0, y0 + h, dtype=np.float32)[:, None] + 0.5 - cy
    xs = np.arange(x0, x0 + w, dtype=np.float32)[None, :] + 0.5 - cx
    c, s = math.cos(angle), math.sin(angle)
    return xs * c + ys * s, -xs * s + ys * c


def shape_mask(obj: PlacedObject, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """The object's footprint on the box [y0, y0+h) x [x0, x0+w) (pixel centres)."""
    u, v = _uv(y0, x0, h, w, obj.cx, obj.cy, obj.angle)
    half_l, half_w = obj.length / 2, obj.width / 2
    name = obj.class_name
    if name in ("building", "vehicle"):
        return (np.abs(u) <= half_l) & (np.abs(v) <= half_w)
    if name == "storage tank":
        return u * u + v * v <= half_l * half_l
    if name == "tree":
        theta = np.arctan2(v, u)
        wobble = 1 + 0.12 * np.sin(5 * theta + obj.width)  # width holds a phase for trees
        return np.hypot(u, v) <= half_l * wobble
    if name == "ship":
        p = np.where(u > 0, 1.4, 3.0)  # pointed bow, blunt stern
        return (np.abs(u / half_l) ** p + (v / half_w) ** 2) <= 1
    if name == "airplane":
        span = obj.length
        fuselage = ((u / half_l) ** 2 + (v / (0.07 * span)) ** 2) <= 1
        wing_half = 0.1 * span * (1 - 0.6 * np.abs(v) / (span / 2))
        wings = (np.abs(u - 0.04 * span) <= wing_half) & (np.abs(v) <= span / 2)
        tail = (np.abs(u + 0.4 * span) <= 0.05 * span) & (np.abs(v) <= 0.18 * span)
        return fuselage | wings | tail
    raise ValueError(f"no drawn shape for {name!r}")


def _orientation_angle(rng: np.random.Generator) -> tuple[str, float]:
    name = ("horizontal", "vertical", "diagonal")[int(rng.integers(3))]
    jitter = math.radians(rng.uniform(-7, 7))
    base = {"horizontal": 0.0, "vertical": math.pi / 2}.get(name)
    if base is None:
        base = math.pi / 4 if rng.random() < 0.5 else 3 * math.pi / 4
    if rng.random() < 0.5:
        base += math.pi  # heading the other way: same orientation
    return name, base + jitter


def _draw_object(class_name: str, rng: np.random.Generator) -> PlacedObject:
    """Attributes and dimensions for one object of a class (position set later)."""
    size = "large" if rng.random() < 0.4 else "small"
    (l_lo, l_hi), (w_lo, w_hi) = SIZES[class_name][size]
    length = float(rng.uniform(l_lo, l_hi))
    width = float(rng.uniform(w_lo, w_hi)) if w_hi else length
    obj = PlacedObject(0, class_name, 0, 0, length, width, 0.0, size=size)
    colours = COLOURS.get(class_name)
    if colours:
        obj.colour = colours[int(rng.integers(len(colours)))]
    if class_name == "building":
        if rng.random() < 0.5:
            obj.shape = "square"
            obj.width = obj.length * float(rng.uniform(0.85, 1.0))
        else:
            obj.shape = "long"
            # At least ~9 px wide even when small, so a long shed never passes for a truck.
            obj.width = obj.length * float(rng.uniform(0.55, 0.65))
            obj.length *= 1.4
    if class_name == "tree":
        obj.width = float(rng.uniform(0, 2 * math.pi))  # the crown's wobble phase
    if class_name in ORIENTED and obj.shape != "square":
        obj.orientation, obj.angle = _orientation_angle(rng)
    elif class_name == "building":
        obj.angle = math.radians(float(rng.uniform(-6, 6)))
    lo, hi = SHADOW_HEIGHT[class_name]
    obj.height = float(rng.uniform(lo, hi)) * (1.6 if size == "large" else 1.0)
    return obj


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square dilation by r pixels inside the array, separable shifted ORs (no scipy)."""
    rows = mask.copy()
    for d in range(1, r + 1):
        rows[:, d:] |= mask[:, :-d]
        rows[:, :-d] |= mask[:, d:]
    out = rows.copy()
    for d in range(1, r + 1):
        out[d:, :] |= rows[:-d, :]
        out[:-d, :] |= rows[d:, :]
    return out


def _place(
    obj: PlacedObject,
    instances: np.ndarray,
    base_ok: np.ndarray,
    rng: np.random.Generator,
    centre_pool: np.ndarray | None = None,
) -> bool:
    """Try random centres until the footprint sits on allowed pixels with clearance."""
    H, W = instances.shape
    reach = math.ceil(max(obj.length, obj.width) / 2) + 1
    pad = reach + CLEARANCE_PX
    for _ in range(MAX_TRIES):
        if centre_pool is not None and len(centre_pool):
            cy, cx = centre_pool[int(rng.integers(len(centre_pool)))]
            cx, cy = float(cx) + 0.5, float(cy) + 0.5
            if not (reach + 1 <= cx <= W - reach - 1 and reach + 1 <= cy <= H - reach - 1):
                continue
        else:
            cx = float(rng.uniform(reach + 1, W - reach - 1))
            cy = float(rng.uniform(reach + 1, H - reach - 1))
        y0, x0 = max(int(cy) - pad, 0), max(int(cx) - pad, 0)
        y1, x1 = min(int(cy) + pad + 1, H), min(int(cx) + pad + 1, W)
        obj.cx, obj.cy = cx, cy
        m = shape_mask(obj, y0, x0, y1 - y0, x1 - x0)
        if not m.any():
            continue
        ok = base_ok[y0:y1, x0:x1]
        if not ok[m].all():
            continue
        grown = dilate(m, CLEARANCE_PX)
        # Clearance from other objects, roads and water alike, unless standing on them.
        if ((instances[y0:y1, x0:x1] > 0) & ~ok & grown).any():
            continue
        ys, xs = np.nonzero(m)
        obj.y0, obj.x0 = y0 + int(ys.min()), x0 + int(xs.min())
        obj.mask = m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        return True
    return False


def _road(rng: np.random.Generator, H: int, W: int, theme: str, first: bool) -> np.ndarray:
    wide = theme == "airport"
    width = rng.uniform(22, 28) if wide else rng.uniform(10, 16)
    vertical = rng.random() < 0.5 if first else None
    ys = np.arange(H, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(W, dtype=np.float32)[None, :] + 0.5
    angle = math.radians(rng.uniform(-8, 8))
    offset = rng.uniform(0.25, 0.75)
    if vertical or (vertical is None and rng.random() < 0.5):
        d = (xs - offset * W) - np.tan(angle) * (ys - H / 2)
    else:
        d = (ys - offset * H) - np.tan(angle) * (xs - W / 2)
    return np.abs(d) <= width / 2


def _water(rng: np.random.Generator, H: int, W: int, theme: str) -> np.ndarray:
    ys = np.arange(H, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(W, dtype=np.float32)[None, :] + 0.5
    if theme == "port":  # a shore along one side, gently wavy
        side = int(rng.integers(4))
        depth = rng.uniform(0.35, 0.5)
        along, across = (xs, ys) if side in (0, 1) else (ys, xs)
        extent = H if side in (0, 1) else W
        wave = 6 * np.sin(along / rng.uniform(18, 40) + rng.uniform(0, 6))
        edge = depth * extent + wave
        return (across < edge) if side in (0, 2) else (across > extent - edge)
    # A pond: an ellipse with a wobbly outline.
    cx, cy = rng.uniform(0.3, 0.7) * W, rng.uniform(0.3, 0.7) * H
    a, b = rng.uniform(0.15, 0.25) * W, rng.uniform(0.12, 0.2) * H
    theta = np.arctan2(ys - cy, xs - cx)
    r = np.hypot((xs - cx) / a, (ys - cy) / b)
    return r <= 1 + 0.12 * np.sin(3 * theta + rng.uniform(0, 6))


@dataclass
class Layout:
    height: int
    width: int
    theme: str
    objects: list[PlacedObject]
    instances: np.ndarray  # (H, W) uint16, 0 = no labelled object


def make_layout(rng: np.random.Generator, size: int = 256) -> Layout:
    """Pick a theme, then place its objects in a fixed order (big and flat things first)."""
    theme = list(THEMES)[int(rng.integers(len(THEMES)))]
    H = W = size
    scale = (size / 256) ** 2
    instances = np.zeros((H, W), np.uint16)
    objects: list[PlacedObject] = []
    counts = {c: round(rng.integers(lo, hi + 1) * scale) for c, (lo, hi) in THEMES[theme].items()}
    if theme == "airport":
        counts["road"] = 1
    next_id = 1
    for cls in PLACEMENT_ORDER:
        for k in range(counts.get(cls, 0)):
            if cls in ("road", "water"):
                m = _road(rng, H, W, theme, k == 0) if cls == "road" else _water(rng, H, W, theme)
                m &= instances == 0  # a crossing road leaves the crossing to the first
                if m.sum() < 200:
                    continue
                ys, xs = np.nonzero(m)
                obj = PlacedObject(next_id, cls, float(xs.mean()), float(ys.mean()), 0, 0, 0.0)
                obj.y0, obj.x0 = int(ys.min()), int(xs.min())
                obj.mask = m[obj.y0 : ys.max() + 1, obj.x0 : xs.max() + 1]
            else:
                obj = _draw_object(cls, rng)
                obj.instance_id = next_id
                ground = instances == 0
                pool = None
                if cls == "ship":
                    water_ids = [o.instance_id for o in objects if o.class_name == "water"]
                    if not water_ids:
                        continue
                    ground = np.isin(instances, water_ids)
                elif cls == "vehicle" and rng.random() < 0.5:
                    roads = [o for o in objects if o.class_name == "road"]
                    if roads:
                        road = roads[int(rng.integers(len(roads)))]
                        ground = instances == road.instance_id
                        obj.orientation, obj.angle = _along(road, rng)
                        pool = np.argwhere(ground)
                # Everything else stands on free ground, clear of roads and water.
                if not _place(obj, instances, ground, rng, pool):
                    continue
            region = instances[obj.y0 : obj.y1, obj.x0 : obj.x1]
            region[obj.mask] = obj.instance_id
            objects.append(obj)
            next_id += 1
    return Layout(H, W, theme, objects, instances)


def _along(road: PlacedObject, rng: np.random.Generator) -> tuple[str, float]:
    """Vehicles on a road point along it."""
    h, w = road.mask.shape
    horizontal = w > h
    angle = (0.0 if horizontal else math.pi / 2) + math.radians(rng.uniform(-4, 4))
    if rng.random() < 0.5:
        angle += math.pi
    return ("horizontal" if horizontal else "vertical"), angle
