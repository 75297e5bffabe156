"""The engine's local HTTP service: jobs, progress, cancel and a per-start token.

The QGIS plugin never loads torch; it talks to this server over loopback instead.
"""
