"""Make docs/gallery.png (synthetic scenes, masks, sentences) and docs/real_overlay.png.

    .venv/bin/python scripts/make_gallery.py [--out docs] [--seed 0]

The gallery shows scenes of both rendering styles with one sentence each and its mask
outlined; the real overlay shows chips cut by `saymap.training.datasets` from the Kampala
and custom-projection SpaceNet samples with their rasterised label masks outlined, which is
how a person checks that labels and imagery line up. Needs Pillow (a dev dependency).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
TILE = 256
CAPTION_H = 40


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a binary mask (mask minus its 4-neighbour erosion), 2 px thick."""
    m = mask > 0
    inner = m.copy()
    inner[1:] &= m[:-1]
    inner[:-1] &= m[1:]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    edge = m & ~inner
    thick = edge.copy()
    thick[1:] |= edge[:-1]
    thick[:, 1:] |= edge[:, :-1]
    return thick


def overlay(image: np.ndarray, mask: np.ndarray, colour=(255, 0, 255)) -> np.ndarray:
    """Tint the mask magenta (no object is magenta) and outline it: object and fit both show."""
    out = image.astype(np.float32).copy()
    m = mask > 0
    out[m] = out[m] * 0.6 + np.asarray(colour, np.float32) * 0.4
    out[outline(mask)] = colour
    return out.astype(np.uint8)


def panel(image: np.ndarray, caption: str, font) -> Image.Image:
    tile = Image.fromarray(image).resize((TILE, TILE), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (TILE, TILE + CAPTION_H), (255, 255, 255))
    canvas.paste(tile, (0, 0))
    draw = ImageDraw.Draw(canvas)
    lines, line = [], ""
    for word in caption.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) > TILE - 8 and line:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    for k, text in enumerate(lines[:2]):
        draw.text((4, TILE + 3 + 17 * k), text, fill=(0, 0, 0), font=font)
    return canvas


def grid(panels: list[Image.Image], cols: int) -> Image.Image:
    rows = (len(panels) + cols - 1) // cols
    w, h = panels[0].size
    sheet = Image.new("RGB", (cols * (w + 4) + 4, rows * (h + 4) + 4), (200, 200, 200))
    for k, p in enumerate(panels):
        sheet.paste(p, (4 + (k % cols) * (w + 4), 4 + (k // cols) * (h + 4)))
    return sheet


def synthetic_gallery(seed: int, font) -> Image.Image:
    from saymap.training.synthetic.scene import generate_scene

    panels = []
    rng = np.random.default_rng(seed)
    wanted = ["attribute", "position", "relation", "comparison", "group", "attribute"]
    for k, style in enumerate(["a"] * 6 + ["b"] * 6):
        scene = generate_scene(seed, k, style)
        kind = wanted[k % len(wanted)]
        pool = [e for e in scene.expressions if e.expression_type == kind]
        pool = pool or [e for e in scene.expressions if e.kind == "full"]
        expr = pool[int(rng.integers(len(pool)))]
        mask = np.isin(scene.instances, expr.instance_ids)
        caption = f"[{style}/{expr.expression_type}] {expr.text}"
        panels.append(panel(overlay(scene.image, mask), caption, font))
    return grid(panels, 4)


def real_overlay(font) -> Image.Image:
    """Grid chips ("all buildings", "all fields") with the rasterised labels outlined."""
    from saymap.training.datasets import LayerSource, build_layer_dataset

    kampala = build_layer_dataset(
        [LayerSource(REAL / "kampala/kampala_west_rgb.tif")],
        REAL / "kampala/kampala_west_buildings.geojson",
        class_field="class",
        group=True,
        chip_size=256,
    )
    spacenet = build_layer_dataset(
        [LayerSource(REAL / "spacenet_custom_proj/sample_geotiff_custom_proj.tif")],
        REAL / "spacenet_custom_proj/geotiff_custom_proj_labels.geojson",
        class_name="centre-pivot field",
        group=True,
        chip_size=256,
    )
    whole = build_layer_dataset(
        [LayerSource(REAL / "spacenet_custom_proj/sample_geotiff_custom_proj.tif")],
        REAL / "spacenet_custom_proj/geotiff_custom_proj_labels.geojson",
        class_name="centre-pivot field",
        group=True,
        chip_size=512,
    )
    panels = []
    # The Kampala chips with the most labelled area: where a misfit would show most.
    covered = sorted(range(len(kampala)), key=lambda k: -int(kampala[k].mask.sum()))[:4]
    for k in sorted(covered):
        s = kampala[k]
        _, window = kampala.window_of(k)
        caption = f"kampala EPSG:3857, px {window.col_off},{window.row_off}: {s.expression}"
        panels.append(panel(overlay(s.image, s.mask), caption, font))
    for k in range(len(spacenet)):
        s = spacenet[k]
        _, window = spacenet.window_of(k)
        caption = f"spacenet custom Albers (GeoJSON, no crs), px {window.col_off},{window.row_off}"
        panels.append(panel(overlay(s.image, s.mask), caption, font))
    s = whole[0]
    caption = "spacenet: whole 512 px raster, labels taken in the raster's CRS"
    panels.append(panel(overlay(s.image, s.mask), caption, font))
    return grid(panels, 4)


def save_small(sheet: Image.Image, path: Path) -> None:
    """A 256-colour palette keeps the PNG a few hundred KB (the noise defeats deflate)."""
    sheet.quantize(colors=192, dither=Image.Dither.NONE).save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["gallery", "real"], default=None)
    args = parser.parse_args(argv)
    font = ImageFont.load_default(14)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "gallery"):
        save_small(synthetic_gallery(args.seed, font), args.out / "gallery.png")
    if args.only in (None, "real"):
        if not REAL.is_dir():
            sys.stderr.write(f"make_gallery: {REAL} not found, skipping the real overlay\n")
        else:
            save_small(real_overlay(font), args.out / "real_overlay.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
