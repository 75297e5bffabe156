"""`make package` builds a zip that installs into a fresh QGIS profile and loads: the real
QGIS desktop under Xvfb runs QGIS's own "Install from ZIP" code on it."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT, package_plugin

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package_plugin.py"), "--dist", str(dist)],
        check=True,
        timeout=60,
    )
    version = package_plugin.read_metadata()["version"]
    return dist / f"saymap-{version}.zip"


def test_zip_layout_and_metadata(plugin_zip: Path) -> None:
    with zipfile.ZipFile(plugin_zip) as archive:
        names = archive.namelist()
        metadata = archive.read("saymap/metadata.txt").decode("utf-8")
    assert all(name.startswith("saymap/") for name in names)
    for needed in ("__init__.py", "plugin.py", "icon.png", "styles/saymap_result.qml"):
        assert f"saymap/{needed}" in names
    assert not [n for n in names if n.endswith((".pyc", "ruff.toml")) or "/." in n]
    parser = configparser.ConfigParser()
    parser.read_string(metadata)
    general = parser["general"]
    for key in package_plugin.REQUIRED:
        assert general.get(key), key
    assert general["hasProcessingProvider"] == "yes"
    assert general["qgisMinimumVersion"] == "3.22"


@pytest.mark.slow
def test_zip_installs_into_a_fresh_profile_and_loads(plugin_zip: Path, tmp_path: Path) -> None:
    if shutil.which("xvfb-run") is None or shutil.which("qgis") is None:
        pytest.fail("QGIS desktop or xvfb-run missing: run `make setup`")
    result = tmp_path / "result.json"
    env = {
        **os.environ,
        "SAYMAP_TEST_ZIP": str(plugin_zip),
        "SAYMAP_TEST_RESULT": str(result),
        "QT_QPA_PLATFORM": "xcb",
    }
    command = [
        "xvfb-run", "-a", "-s", "-screen 0 1280x800x24",
        "qgis", "--nologo", "--noversioncheck", "--noplugins",
        "--profiles-path", str(tmp_path / "profiles"),
        "--code", str(HERE / "desktop" / "install_from_zip.py"),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    seen = json.loads(result.read_text())
    assert "error" not in seen, seen["error"]
    assert Path(seen["home_plugin_path"]).is_relative_to(tmp_path / "profiles")
    assert seen["installed"] and seen["active"] and seen["toolbar"]
    assert seen["provider"] and seen["algorithm"]
    assert seen["unloaded"] and not seen["toolbar_after_unload"]
    assert not seen["provider_after_unload"]
