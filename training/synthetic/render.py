"""Paint a layout into an aerial-looking RGB image, in one of two rendering styles.

Style "a" is temperate (green ground, sun from the upper left, crisp); style "b" is arid
(sand ground, other roof and vehicle hues under the same colour names, sun from the lower
right with longer shadows, haze, more noise and blur). Training on "a" and testing on "b"
is the generalisation check. Clutter (sheds, patches, markings) that is not an instance
shares the objects' colours, so colour alone does not find the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from saymap.training.synthetic.layout import Layout, PlacedObject, dilate

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Style:
    name: str
    ground: tuple[RGB, RGB]
    palette: dict[str, RGB]
    road: RGB
    marking: RGB
    water: tuple[RGB, RGB]
    tree: tuple[RGB, RGB]
    shadow_dir: tuple[float, float]  # unit (dx, dy) in which shadows fall
    shadow_scale: float
    shadow_darkness: float
    noise_sigma: float
    blur_probability: float
    haze: float
    texture_cells: int


STYLES: dict[str, Style] = {
    "a": Style(
        name="a",
        ground=((92, 118, 66), (146, 128, 96)),
        palette={"red": (178, 40, 38), "white": (232, 232, 226), "grey": (126, 126, 130),
                 "blue": (45, 75, 165), "brown": (112, 76, 46), "black": (28, 28, 32),
                 "yellow": (222, 192, 48)},
        road=(86, 86, 90),
        marking=(226, 226, 214),
        water=((52, 98, 124), (22, 50, 80)),
        tree=((34, 66, 30), (84, 122, 58)),
        shadow_dir=(math.cos(math.radians(40)), math.sin(math.radians(40))),
        shadow_scale=1.0,
        shadow_darkness=0.55,
        noise_sigma=4.0,
        blur_probability=0.4,
        haze=0.0,
        texture_cells=6,
    ),
    "b": Style(
        name="b",
        ground=((200, 174, 132), (166, 138, 98)),
        palette={"red": (158, 72, 54), "white": (244, 238, 222), "grey": (152, 148, 142),
                 "blue": (72, 112, 152), "brown": (134, 94, 60), "black": (48, 42, 40),
                 "yellow": (232, 204, 92)},
        road=(122, 114, 106),
        marking=(240, 228, 150),
        water=((44, 122, 126), (20, 78, 92)),
        tree=((62, 82, 40), (112, 126, 72)),
        shadow_dir=(math.cos(math.radians(200)), math.sin(math.radians(200))),
        shadow_scale=1.5,
        shadow_darkness=0.62,
        noise_sigma=6.5,
        blur_probability=0.8,
        haze=0.12,
        texture_cells=10,
    ),
}  # fmt: skip


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled random grid in [0, 1]: cheap low-frequency texture."""
    g = rng.random((cells + 1, cells + 1), dtype=np.float32)
    y = np.arange(h, dtype=np.float32) * cells / h
    x = np.arange(w, dtype=np.float32) * cells / w
    iy, ix = y.astype(np.intp), x.astype(np.intp)
    fy, fx = (y - iy)[:, None], (x - ix)[None, :]
    top = g[iy][:, ix] * (1 - fx) + g[iy][:, ix + 1] * fx
    bottom = g[iy + 1][:, ix] * (1 - fx) + g[iy + 1][:, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


def _mix(a: RGB, b: RGB, t: np.ndarray) -> np.ndarray:
    a_, b_ = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a_ + (b_ - a_) * t[..., None]


def _erode(mask: np.ndarray) -> np.ndarray:
    return ~dilate(np.pad(~mask, 1, constant_values=True), 1)[1:-1, 1:-1]


def _object_pixels(obj: PlacedObject, style: Style, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) float colours for the object's box; only mask pixels are used."""
    h, w = obj.mask.shape
    u, v = obj.local_uv()
    sx, sy = style.shadow_dir
    jitter = rng.normal(0, 6, 3).astype(np.float32)
    name = obj.class_name
    if name == "tree":
        t = smooth_noise(rng, h, w, 3)
        base = _mix(*style.tree, t)
        # Lit on the side away from the shadow: (u, v) rotate back to image (dx, dy).
        c, s = math.cos(obj.angle), math.sin(obj.angle)
        dx, dy = u * c - v * s, u * s + v * c
        lit = -(dx * sx + dy * sy) / max(obj.length / 2, 1)
        return base * (1 + 0.25 * lit)[..., None] + jitter
    colour = np.asarray(style.palette[obj.colour or "grey"], np.float32) + jitter
    shade = np.ones((h, w), np.float32)
    half_l, half_w = obj.length / 2, obj.width / 2
    if name == "building":
        if obj.shape == "long":  # gable roof: two faces
            shade = np.where(v > 0, 1.08, 0.84).astype(np.float32)
        else:  # hip roof: four faces
            side = np.abs(u) / half_l > np.abs(v) / half_w
            shade = np.where(side, np.where(u > 0, 1.06, 0.9), np.where(v > 0, 1.0, 0.82))
        edge = obj.mask & ~_erode(obj.mask)
        shade = np.where(edge, 0.7, shade).astype(np.float32)
    elif name == "vehicle":
        windshield = (u > 0.12 * obj.length) & (u < 0.3 * obj.length)
        rear = (u < -0.28 * obj.length) & (u > -0.4 * obj.length) & (obj.size == "small")
        shade = np.where(windshield | rear, 0.35, 1.0 - 0.1 * np.abs(v) / half_w)
    elif name == "storage tank":
        r = np.hypot(u, v) / half_l
        shade = np.where(r > 0.84, 0.68, 1.05 - 0.22 * r * r)
    elif name == "ship":
        deck = (u > -0.38 * obj.length) & (u < -0.05 * obj.length) & (np.abs(v) < 0.3 * obj.width)
        deck_colour = 170.0 if obj.colour == "white" else 228.0
        out = colour * (1 - 0.12 * np.abs(v) / half_w)[..., None]
        out[deck] = deck_colour
        return out
    elif name == "airplane":
        wings = np.abs(v) > 0.08 * obj.length
        engine = (np.abs(np.abs(v) - 0.22 * obj.length) < 1.6) & (np.abs(u - 0.1 * obj.length) < 2)
        shade = np.where(engine, 0.4, np.where(wings, 0.9, 1.04))
    return colour * shade[..., None].astype(np.float32)


def _shadows(layout: Layout, style: Style) -> np.ndarray:
    """Where cast shadows fall: each object's mask swept along the sun direction."""
    H, W = layout.height, layout.width
    shadow = np.zeros((H, W), bool)
    sx, sy = style.shadow_dir
    for obj in layout.objects:
        if obj.height <= 0 or obj.class_name in ("road", "water"):
            continue
        length = obj.height * style.shadow_scale
        for k in np.linspace(1.0, length, num=max(2, int(length / 2))):
            dy, dx = round(k * sy), round(k * sx)
            y0, x0 = obj.y0 + dy, obj.x0 + dx
            ys0, xs0 = max(y0, 0), max(x0, 0)
            ys1, xs1 = min(y0 + obj.mask.shape[0], H), min(x0 + obj.mask.shape[1], W)
            if ys1 <= ys0 or xs1 <= xs0:
                continue
            shadow[ys0:ys1, xs0:xs1] |= obj.mask[ys0 - y0 : ys1 - y0, xs0 - x0 : xs1 - x0]
    return shadow


def _paint_roads(img: np.ndarray, layout: Layout, style: Style, rng) -> None:
    for obj in layout.objects:
        if obj.class_name != "road":
            continue
        region = img[obj.y0 : obj.y1, obj.x0 : obj.x1]
        h, w = obj.mask.shape
        tone = 1 + 0.08 * (smooth_noise(rng, h, w, 8) - 0.5)
        region[obj.mask] = (np.asarray(style.road, np.float32) * tone[..., None])[obj.mask]
        # A dashed centre line: the middle of the road in each row (or column).
        along_rows = h >= w
        m = obj.mask if along_rows else obj.mask.T
        idx = np.arange(m.shape[1], dtype=np.float32)
        count = m.sum(axis=1)
        centre = (m * idx).sum(axis=1) / np.maximum(count, 1)
        dash = (np.arange(m.shape[0]) // 6) % 2 == 0
        line = (np.abs(idx[None, :] - centre[:, None]) < 1.0) & dash[:, None] & m
        line = line if along_rows else line.T
        region[line] = style.marking


def _paint_clutter(img, layout: Layout, style: Style, rng: np.random.Generator) -> None:
    """Unlabelled things in the objects' colours: sheds, patches, short painted lines."""
    H, W = layout.height, layout.width
    free = layout.instances == 0
    names = list(style.palette)
    n = int(rng.integers(4, 11) * (H * W) / 256**2)
    for _ in range(n):
        kind = int(rng.integers(3))
        cy, cx = int(rng.integers(8, H - 8)), int(rng.integers(8, W - 8))
        if kind == 0:  # a shed, square-ish, 6-10 px
            s = int(rng.integers(6, 11))
            ys, xs = slice(cy - s // 2, cy + s - s // 2), slice(cx - s // 2, cx + s - s // 2)
            box = free[ys, xs]
            if box.all():
                colour = style.palette[names[int(rng.integers(len(names)))]]
                img[ys, xs] = np.asarray(colour, np.float32) * 0.95
        elif kind == 1:  # a bare or dark patch, blobby
            r = int(rng.integers(5, 12))
            yy, xx = np.ogrid[-r : r + 1, -r : r + 1]
            blob = (yy * yy + xx * xx) <= r * r * (0.6 + 0.4 * rng.random())
            ys, xs = slice(cy - r, cy + r + 1), slice(cx - r, cx + r + 1)
            if blob.shape == free[ys, xs].shape:
                ok = blob & free[ys, xs]
                tone = rng.uniform(0.6, 1.3)
                img[ys, xs][ok] = img[ys, xs][ok] * tone
        else:  # a painted line or fence, 1 px wide
            length = int(rng.integers(8, 20))
            if rng.random() < 0.5:
                ys, xs = slice(cy, cy + 1), slice(cx - length // 2, cx + length // 2)
            else:
                ys, xs = slice(cy - length // 2, cy + length // 2), slice(cx, cx + 1)
            ok = free[ys, xs]
            colour = style.palette[names[int(rng.integers(len(names)))]]
            img[ys, xs][ok] = colour


def _box_blur(img: np.ndarray) -> np.ndarray:
    p = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    rows = p[:-2] + p[1:-1] + p[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9.0


def render(layout: Layout, style: Style, rng: np.random.Generator) -> np.ndarray:
    """The (H, W, 3) uint8 image of a layout."""
    H, W = layout.height, layout.width
    t = smooth_noise(rng, H, W, style.texture_cells)
    img = _mix(*style.ground, t)
    img *= (1 + 0.1 * (smooth_noise(rng, H, W, style.texture_cells * 5) - 0.5))[..., None]
    for obj in layout.objects:
        if obj.class_name == "water":
            region = img[obj.y0 : obj.y1, obj.x0 : obj.x1]
            h, w = obj.mask.shape
            depth = smooth_noise(rng, h, w, 3)
            region[obj.mask] = _mix(*style.water, depth)[obj.mask]
    _paint_roads(img, layout, style, rng)
    _paint_clutter(img, layout, style, rng)
    stands = np.isin(layout.instances, [o.instance_id for o in layout.objects
                                        if o.class_name not in ("road", "water")])  # fmt: skip
    shadow = _shadows(layout, style) & ~stands
    img[shadow] *= style.shadow_darkness
    for obj in layout.objects:
        if obj.class_name in ("road", "water"):
            continue
        pix = _object_pixels(obj, style, rng)
        region = img[obj.y0 : obj.y1, obj.x0 : obj.x1]
        region[obj.mask] = pix[obj.mask]
    if style.haze:
        img = img * (1 - style.haze) + style.haze * 200.0
    img += rng.normal(0, style.noise_sigma, img.shape).astype(np.float32)
    if rng.random() < style.blur_probability:
        img = _box_blur(img)
    return np.clip(img, 0, 255).astype(np.uint8)
