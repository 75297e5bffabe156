"""SayMap engine: the referring segmentation model, raster I/O, tiled inference and the server."""

from saymap.engine.version import __version__

__all__ = ["__version__"]
