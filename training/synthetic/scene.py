"""One synthetic scene end to end: layout, image, measured object facts, expressions.

Everything a scene contains follows from (seed, index, style), so scenes can be made in
any order, by any number of workers, and come out the same.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from saymap.training.expressions import Expression, ObjectFacts, expressions_for_scene
from saymap.training.synthetic.layout import Layout, make_layout
from saymap.training.synthetic.render import STYLES, render

MAX_TARGETS_PER_CLASS = 3  # trees come by the dozen; three targets of a class are plenty
SUPPORT_SHARE = 0.5  # a ring around an object mostly of one instance: it stands on it


@dataclass
class Scene:
    scene_id: str
    style: str
    theme: str
    image: np.ndarray  # (H, W, 3) uint8
    instances: np.ndarray  # (H, W) uint16
    facts: list[ObjectFacts]
    expressions: list[Expression]
    layout: Layout


def scene_rng(seed: int, index: int, style: str) -> np.random.Generator:
    """A generator that depends only on (seed, index, style)."""
    return np.random.default_rng([seed, index, zlib.crc32(style.encode())])


def measure(instances: np.ndarray, labels: dict[int, dict]) -> list[ObjectFacts]:
    """Object facts from the instance raster: area, centroid, box, what it stands on.

    `labels` maps instance id to {"class", "colour", "shape", "orientation"}; geometry is
    taken from the pixels alone, so the resolver sees what the image shows.
    """
    ys, xs = np.nonzero(instances)
    ids = instances[ys, xs]
    order = np.argsort(ids, kind="stable")
    ys, xs, ids = ys[order], xs[order], ids[order]
    uniq, starts, counts = np.unique(ids, return_index=True, return_counts=True)
    sum_x = np.add.reduceat(xs.astype(np.float64), starts)
    sum_y = np.add.reduceat(ys.astype(np.float64), starts)
    x0s, x1s = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts) + 1
    y0s, y1s = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts) + 1
    facts = []
    for k, iid in enumerate(uniq.tolist()):
        info = labels[iid]
        x0, x1, y0, y1 = int(x0s[k]), int(x1s[k]), int(y0s[k]), int(y1s[k])
        support = 0
        if info["class"] not in ("road", "water"):
            ring = instances[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2].ravel()
            ring = ring[ring != iid]
            if ring.size:
                values, n = np.unique(ring, return_counts=True)
                best = int(np.argmax(n))
                if values[best] != 0 and n[best] >= SUPPORT_SHARE * ring.size:
                    support = int(values[best])
        facts.append(
            ObjectFacts(
                instance_id=iid,
                class_name=info["class"],
                colour=info.get("colour"),
                shape=info.get("shape"),
                orientation=info.get("orientation"),
                area=int(counts[k]),
                cx=float(sum_x[k] / counts[k]) + 0.5,
                cy=float(sum_y[k] / counts[k]) + 0.5,
                x0=x0,
                y0=y0,
                x1=x1,
                y1=y1,
                support=support,
            )
        )
    return facts


def labels_of(layout: Layout) -> dict[int, dict]:
    return {
        o.instance_id: {
            "class": o.class_name,
            "colour": o.colour,
            "shape": o.shape,
            "orientation": o.orientation,
        }
        for o in layout.objects
    }


def choose_targets(facts: list[ObjectFacts], rng: np.random.Generator) -> list[int]:
    targets: list[int] = []
    for cls in sorted({f.class_name for f in facts}):
        ids = [f.instance_id for f in facts if f.class_name == cls]
        if len(ids) > MAX_TARGETS_PER_CLASS:
            ids = sorted(rng.choice(ids, MAX_TARGETS_PER_CLASS, replace=False).tolist())
        targets.extend(ids)
    return targets


def generate_scene(seed: int, index: int, style: str = "a", size: int = 256) -> Scene:
    """Make scene number `index` of a dataset with this seed and style."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
    rng = scene_rng(seed, index, style)
    layout = make_layout(rng, size)
    image = render(layout, STYLES[style], rng)
    facts = measure(layout.instances, labels_of(layout))
    targets = choose_targets(facts, rng)
    expressions = expressions_for_scene(facts, targets, layout.width, layout.height, rng)
    return Scene(
        scene_id=f"{style}{index:06d}",
        style=style,
        theme=layout.theme,
        image=image,
        instances=layout.instances,
        facts=facts,
        expressions=expressions,
        layout=layout,
    )
