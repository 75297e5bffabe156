"""`make demo`: segment a raster from a sentence with the shipped default model.

Without --image it segments "building" on a real drone orthophoto of Zanzibar that the
model never trained on (docs/demo, CC BY 4.0). `--scene synthetic` (make demo
SCENE=synthetic) paints a 1024 x 1024 georeferenced scene instead (a mosaic of 16 synthetic
scenes: seed 7, style a) and asks for storage tanks. It runs the real `saymap segment`
command, then draws the polygons over the image as a PNG preview.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from PIL import Image, ImageDraw
from rasterio.enums import Resampling
from rasterio.transform import from_origin

from saymap.training.synthetic.scene import generate_scene

OUT = Path("out/demo")
REAL_DEMO = Path(__file__).resolve().parents[1] / "docs" / "demo" / "zanzibar_demo.tif"


def paint_scene(path: Path, seed: int = 7, grid: int = 4, size: int = 256) -> Path:
    rows = []
    for r in range(grid):
        tiles = [generate_scene(seed, r * grid + c, "a", size).image for c in range(grid)]
        rows.append(np.concatenate(tiles, axis=1))
    image = np.concatenate(rows, axis=0)  # (H, W, 3)
    profile = {
        "driver": "GTiff",
        "width": image.shape[1],
        "height": image.shape[0],
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": from_origin(500_000.0, 5_200_000.0, 0.5, 0.5),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "photometric": "RGB",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(image.transpose(2, 0, 1))
    return path


def preview(raster: Path, gpkg: Path, png: Path, prompt: str, max_side: int = 1024) -> int:
    with rasterio.open(raster) as src:
        scale = max(1.0, max(src.width, src.height) / max_side)
        shape = (min(src.count, 3), int(src.height / scale), int(src.width / scale))
        data = src.read(
            list(range(1, shape[0] + 1)), out_shape=shape, resampling=Resampling.average
        )
        inverse = ~src.transform
    if data.dtype != np.uint8:  # stretch like the engine does, for display only
        lo, hi = np.percentile(data, (2, 98))
        data = np.clip((data - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    if data.shape[0] == 1:
        data = np.repeat(data, 3, axis=0)
    image = Image.fromarray(data.transpose(1, 2, 0)).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    _, _, geometries, _ = pyogrio.raw.read(gpkg)
    for wkb in geometries:
        geom = shapely.from_wkb(wkb)
        for poly in getattr(geom, "geoms", [geom]):
            ring = [inverse * xy for xy in poly.exterior.coords]
            ring = [(x / scale, y / scale) for x, y in ring]
            draw.polygon(ring, fill=(255, 210, 0, 90), outline=(255, 40, 40, 255), width=2)
    image = Image.alpha_composite(image, overlay)
    ImageDraw.Draw(image).text((8, 8), f'"{prompt}": {len(geometries)} polygons', fill="white")
    image.convert("RGB").save(png)
    return len(geometries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", type=Path, help="a georeferenced raster (default: painted)")
    parser.add_argument("--prompt", help="what to map (default: building, or storage tank)")
    parser.add_argument(
        "--scene", choices=["real", "synthetic"], default="real", help="the default image"
    )
    args = parser.parse_args()
    started = time.monotonic()
    synthetic = args.image is None and args.scene == "synthetic"
    raster = args.image or (paint_scene(OUT / "scene.tif") if synthetic else REAL_DEMO)
    prompt = args.prompt or ("storage tank" if synthetic else "building")
    OUT.mkdir(parents=True, exist_ok=True)
    gpkg, png = OUT / "result.gpkg", OUT / "preview.png"
    saymap = Path(sys.executable).with_name("saymap")
    cmd = [str(saymap), "segment", str(raster), prompt, "-o", str(gpkg), "--overwrite"]
    print("demo:", " ".join(cmd), flush=True)
    if subprocess.run(cmd).returncode != 0:
        return 1
    n = preview(raster, gpkg, png, prompt)
    print(f"demo: {n} polygons for {prompt!r} -> {gpkg}")
    print(f"demo: preview -> {png}  ({time.monotonic() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
