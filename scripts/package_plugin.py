#!/usr/bin/env python3
"""Build dist/saymap-<version>.zip, installable through QGIS's "Install from ZIP".

The zip holds one folder, `saymap/`: the plugin's modules, styles and icon from plugin/,
metadata.txt from the project root (the one source of the version), and build_info.json
recording this source folder so the set-up dialog can install the engine from it.
Standard library only: any Python runs it.
"""

from __future__ import annotations

import argparse
import configparser
import json
import shutil
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = ROOT / "plugin"
PACKAGE = "saymap"
REQUIRED = (
    "name",
    "qgisMinimumVersion",
    "description",
    "about",
    "version",
    "author",
    "email",
    "repository",
    "tracker",
    "tags",
    "icon",
    "hasProcessingProvider",
)
LEFT_OUT = {"ruff.toml", "build_info.json", "__pycache__", ".pytest_cache"}


def read_metadata(path: Path = ROOT / "metadata.txt") -> dict[str, str]:
    """metadata.txt's [general] section; SystemExit naming any required key that is missing."""
    parser = configparser.ConfigParser()
    parser.read(path, encoding="utf-8")
    general = dict(parser["general"]) if parser.has_section("general") else {}
    # configparser lower-cases keys; QGIS reads them case-insensitively too.
    missing = [key for key in REQUIRED if not general.get(key.lower(), "").strip()]
    if missing:
        raise SystemExit(f"package: metadata.txt lacks {', '.join(missing)}")
    return general


def plugin_files() -> list[Path]:
    """The files that go into the plugin folder, relative to plugin/."""
    files = []
    for path in sorted(PLUGIN_SRC.rglob("*")):
        rel = path.relative_to(PLUGIN_SRC)
        hidden = any(part.startswith(".") for part in rel.parts)
        if (
            path.is_file()
            and not hidden
            and not set(rel.parts) & LEFT_OUT
            and path.suffix != ".pyc"
        ):
            files.append(rel)
    return files


def assemble(dest: Path) -> Path:
    """Lay the plugin folder out at dest/saymap (what the zip contains); returns that folder."""
    metadata = read_metadata()
    folder = dest / PACKAGE
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for rel in plugin_files():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PLUGIN_SRC / rel, folder / rel)
    shutil.copy2(ROOT / "metadata.txt", folder / "metadata.txt")
    icon = folder / metadata["icon"]
    if not icon.is_file():
        raise SystemExit(f"package: the icon {metadata['icon']} named in metadata.txt is missing")
    info = {
        "source_dir": str(ROOT),
        "version": metadata["version"],
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (folder / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return folder


def build_zip(dist: Path) -> Path:
    metadata = read_metadata()
    staging = dist / "staging"
    folder = assemble(staging)
    dist.mkdir(parents=True, exist_ok=True)
    target = dist / f"{PACKAGE}-{metadata['version']}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(staging).as_posix())
    tmp.replace(target)
    shutil.rmtree(staging)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    args = parser.parse_args(argv)
    target = build_zip(args.dist)
    with zipfile.ZipFile(target) as archive:
        count = len(archive.namelist())
    sys.stdout.write(f"package: {target} ({count} files, {target.stat().st_size // 1024} KiB)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
