"""Read tiles on a background thread, a bounded queue ahead of the model.

Reading and decoding windows (JPEG, deflate) overlaps with the model's forward pass; the
queue's bound keeps memory flat: at most `depth` tiles wait, however large the raster.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

import numpy as np

from saymap.engine.aoi import Region, region_mask
from saymap.engine.raster import RasterSpec, WindowReader
from saymap.engine.tiling import Tile, TileGrid
from saymap.engine.timing import StageTimes

TileData = tuple[Tile, np.ndarray, np.ndarray]  # tile, (3, S, S) uint8 pixels, (S, S) valid
_DONE = object()


def _put(items: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put unless the consumer has gone (stop set); never blocks forever."""
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _read_tiles(
    spec: RasterSpec,
    grid: TileGrid,
    region: Region,
    items: queue.Queue,
    stop: threading.Event,
    times: StageTimes,
) -> None:
    """Reader thread: tiles in grid order → (tile, pixels, valid) on the queue, then _DONE."""
    try:
        with WindowReader(spec) as reader:
            for tile in grid:
                with times.measure("read"):
                    pixels, valid = reader.read(tile.window)
                    inside = region_mask(region, tile.window)
                    if inside is not None:
                        valid &= inside
                if not _put(items, (tile, pixels, valid), stop):
                    return
        _put(items, _DONE, stop)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        _put(items, exc, stop)


@contextlib.contextmanager
def prefetched_tiles(
    spec: RasterSpec, grid: TileGrid, region: Region, depth: int, times: StageTimes | None = None
) -> Iterator[Iterator[TileData]]:
    """`with prefetched_tiles(...) as tiles: for tile, pixels, valid in tiles: ...`

    Leaving the block early (an error, a cancel) stops and joins the reader thread. `times`
    collects the reader's "read" seconds and the consumer's "wait" for it.
    """
    times = times or StageTimes()
    items: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_tiles, args=(spec, grid, region, items, stop, times), name="saymap-reader"
    )
    reader.start()

    def drain() -> Iterator[TileData]:
        while True:
            with times.measure("wait"):
                item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    try:
        yield drain()
    finally:
        stop.set()
        reader.join()
