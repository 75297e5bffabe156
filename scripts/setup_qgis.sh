#!/usr/bin/env bash
# Installs QGIS (Debian's packages) and the plugin's test environment. Idempotent; called by
# `make setup` / `make setup-qgis`. QGIS's Python only gets pytest and pytest-qt: the engine
# (torch, rasterio, pyproj) lives in its own venv, see docs and ENVIRONMENT notes.
set -euo pipefail
VENV=${1:-.venv-qgis}
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for pkg in qgis python3-qgis xvfb imagemagick python3-venv; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-qgis: installing ${missing[*]} with apt-get (QGIS is about 1.2 GB)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup-qgis: creating $VENV from /usr/bin/python3 with QGIS's site-packages"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
if ! "$VENV/bin/python" -c "import pytest, pytestqt" >/dev/null 2>&1; then
    # Only the test tools: everything else this venv sees is Debian's (QGIS, PyQt5, GDAL).
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pytest>=7" "pytest-qt>=4.2"
fi
"$VENV/bin/python" -c "from qgis.core import Qgis; print(f'setup-qgis: QGIS {Qgis.QGIS_VERSION}')"
