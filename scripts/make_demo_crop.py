"""Cut the `make demo` orthophoto from ../shared: a 1024 x 1024 px crop of the Zanzibar
drone mosaic (OpenAerialMap, CC BY 4.0), at 0.15 m per pixel (2x averaged), JPEG in GeoTIFF
so it stays under 1 MB. It comes from the scorecard's hold-out strip (the east 25 %), so
the demo shows the model on roofs it never trained on.

    .venv/bin/python scripts/make_demo_crop.py   # writes docs/demo/zanzibar_demo.tif
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import rasterio
import shapely
from rasterio.enums import Resampling
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from saymap.training.holdouts import default_data_root, holdout_window

SOURCE = "hot_zanzibar/zanzibar_north_rgb.tif"
LABELS = "hot_zanzibar/zanzibar_buildings.geojson"
OUT = Path("docs/demo/zanzibar_demo.tif")
SIDE = 2048  # native pixels (0.075 m), written as 1024 at 0.15 m


def best_window(src: rasterio.io.DatasetReader, labels: gpd.GeoDataFrame) -> Window:
    """The SIDE x SIDE window of the hold-out strip holding the most building area."""
    strip = holdout_window(src.width, src.height)
    best, best_area = None, -1.0
    for row in range(0, src.height - SIDE + 1, 256):
        for col in range(int(strip.col_off), src.width - SIDE + 1, 256):
            window = Window(col, row, SIDE, SIDE)
            area = labels.intersection(shapely.box(*window_bounds(window, src.transform))).area
            if area.sum() > best_area:
                best, best_area = window, float(area.sum())
    assert best is not None
    return best


def main() -> int:
    root = default_data_root()
    with rasterio.open(root / SOURCE) as src:
        labels = gpd.read_file(root / LABELS).to_crs(src.crs)
        window = best_window(src, labels)
        data = src.read(
            [1, 2, 3], window=window, out_shape=(3, SIDE // 2, SIDE // 2),
            resampling=Resampling.average,
        )  # fmt: skip
        transform = window_transform(window, src.transform) * rasterio.Affine.scale(2)
        crs = src.crs
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        OUT, "w", driver="GTiff", width=SIDE // 2, height=SIDE // 2, count=3, dtype="uint8",
        crs=crs, transform=transform, tiled=True, blockxsize=256, blockysize=256,
        compress="jpeg", jpeg_quality=85, photometric="YCBCR",
    ) as dst:  # fmt: skip
        dst.write(data)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB) from {SOURCE} window {window}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
