"""The plugin's pure pieces: prompt parsing, names, messages, set-up steps, API parsing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from .conftest import ENGINE_PYTHON, ROOT


@pytest.fixture(autouse=True)
def _plugin_on_path(plugins_dir: Path) -> None:
    """The modules are imported from the assembled plugin folder."""


def test_prompts_are_only_split_the_engine_judges_them() -> None:
    """The plugin splits the box into prompts (';' or one per line, Processing's batch mode)
    and refuses only an empty box; limits are the engine's, said in its words."""
    from saymap.errors import PromptError
    from saymap.request import join_prompts, split_prompts

    assert split_prompts("  storage tanks ") == ("storage tanks",)
    assert split_prompts("cars; trees;;") == ("cars", "trees")
    assert split_prompts("car\r\nthe long building; tree\n") == ("car", "the long building", "tree")
    many = tuple(f"p{i}" for i in range(17))
    assert split_prompts(join_prompts(many)) == many  # 17 go to the engine, which decides
    assert split_prompts("x" * 301) == ("x" * 301,)
    with pytest.raises(PromptError, match="Type what to map"):
        split_prompts(" ; ")


def test_result_paths_never_reuse_a_file(tmp_path: Path) -> None:
    from saymap.layers import result_path, slug

    assert slug("The long, red-roofed building!") == "the_long_red_roofed_building"
    assert slug("???") == "result"
    now = datetime(2025, 1, 2, 3, 4, 5)
    first = result_path(tmp_path, ("cars",), now)
    assert first.name == "cars_20250102-030405.gpkg"
    first.write_bytes(b"")
    assert result_path(tmp_path, ("cars",), now).name == "cars_20250102-030405_2.gpkg"


def test_layer_names_tell_runs_apart() -> None:
    from saymap.layers import layer_name

    now = datetime(2025, 1, 2, 3, 4, 5)
    assert layer_name(("cars", "trees"), "kampala", "default") == "cars; trees · kampala · default"
    taken = {"building · kampala · default"}
    assert layer_name(("building",), "kampala", "default", taken, now) == (
        "building · kampala · default · 03:04:05"
    )
    taken.add("building · kampala · default · 03:04:05")
    assert layer_name(("building",), "kampala", "default", taken, now).endswith("05 (2)")
    assert layer_name(("car",)) == "car"


def test_engine_sentences_in_qgis_words() -> None:
    """messages.py: every engine sentence that names a flag or comes with an HTTP code is
    said in QGIS terms; one no rule knows is shown as the engine said it."""
    from saymap.errors import EngineRequestError, EngineUnavailable, JobFailed
    from saymap.messages import (
        BAD_CRS,
        ENGINE_ERROR,
        ENGINE_GONE,
        NO_CRS,
        OUTPUT_EXISTS,
        REFUSED,
        Problem,
        explain,
        plain,
    )

    no_crs = EngineRequestError(
        400, "/data/x.tif has no coordinate reference system; pass --assume-crs (e.g. "
        "EPSG:32633) if you know it",
    )  # fmt: skip
    problem = explain(no_crs)
    assert problem.kind == NO_CRS and "“x.tif”" in problem.text
    assert "Layer Properties" in problem.text and "--" not in problem.text
    assert str(no_crs) == no_crs.detail and "HTTP" not in str(no_crs)
    bad = explain(EngineRequestError(400, "--assume-crs 'EPSG:1' is not a CRS: unknown"))
    assert bad.kind == BAD_CRS and "EPSG:1" in bad.text and "--" not in bad.text
    exists = explain(
        EngineRequestError(
            409, "the output /o.gpkg already exists; choose another name or send overwrite: true"
        )
    )
    assert exists.kind == OUTPUT_EXISTS and "Replace the output file" in exists.text
    ran = explain(JobFailed("/o.gpkg already exists; pass --overwrite to replace it"))
    assert ran.kind == OUTPUT_EXISTS and "--" not in ran.text
    assert explain(EngineRequestError(500, "Internal Server Error")).kind == ENGINE_ERROR
    assert explain(EngineUnavailable("no engine answers")).kind == ENGINE_GONE
    verbatim = "invalid request: prompts: List should have at most 16 items after validation"
    assert explain(EngineRequestError(422, verbatim)) == Problem(REFUSED, verbatim)
    gsd = plain("/r.tif: cannot measure metres; segmented at its own resolution instead of 0.3 m "
                "(pass --gsd native to silence this)")  # fmt: skip
    assert gsd.endswith("instead of 0.3 m") and "--" not in gsd
    far = plain("/r.tif is 30 m per pixel; reading it at 0.3 m would scale it by 0.01. Pass "
                "--gsd native, or a gsd within 64x of the raster's")  # fmt: skip
    assert "working resolution to native" in far and "--" not in far


def test_start_failures_say_what_to_do() -> None:
    from saymap.engine_launcher import diagnose_start_failure, missing_python_message

    python = Path("/opt/py/bin/python")
    assert "Set up engine" in missing_python_message(None)
    missing = diagnose_start_failure(python, 0, "ModuleNotFoundError: No module named 'saymap'", 1)
    assert "lacks the SayMap engine" in missing and "make setup" in missing
    busy = "saymap: error: cannot listen on 127.0.0.1:8765: [Errno 98] Address already in use"
    assert diagnose_start_failure(python, 8765, busy, 2).startswith("Port 8765 is busy")
    other = "noise\nsaymap: error: an engine (pid 12) already serves /d on port 5\nmore noise"
    assert diagnose_start_failure(python, 0, other, 2).endswith("already serves /d on port 5")


def test_setup_steps_install_into_the_new_venv_only(tmp_path: Path) -> None:
    from saymap.engine_setup import TEXT_ENCODER_PACKAGE, TORCH_CPU_INDEX, setup_steps

    venv = tmp_path / "engine-venv"
    cpu = setup_steps(Path("/usr/bin/python3"), venv, str(ROOT), cuda=False)
    assert cpu[0].program == "/usr/bin/python3" and cpu[0].arguments == ("-m", "venv", str(venv))
    assert all(step.program == str(venv / "bin" / "python") for step in cpu[1:])
    torch_step, engine_step, encoder_step = (s.arguments for s in cpu[1:4])
    pin = re.search(r'"(torch==[^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert TORCH_CPU_INDEX in torch_step and torch_step[-1] == pin  # the source's own pin
    assert "--no-deps" in torch_step
    assert engine_step[-1] == str(ROOT) and TORCH_CPU_INDEX not in engine_step
    assert encoder_step[-2:] == ("--no-deps", TEXT_ENCODER_PACKAGE)
    cuda = setup_steps(Path("/usr/bin/python3"), venv, "saymap", cuda=True, extra_pip_args=("-q",))
    assert TORCH_CPU_INDEX not in cuda[1].arguments and cuda[1].arguments[-1] == "torch"
    assert "--isolated" in cuda[1].arguments and "--isolated" not in torch_step
    assert "cannot use the GPU" in cuda[-1].arguments[-1]
    assert "cannot use the GPU" not in cpu[-1].arguments[-1]
    assert cuda[2].arguments[-1] == "saymap" and "-q" in cuda[2].arguments


def test_found_pythons_are_new_enough() -> None:
    from saymap.engine_setup import MIN_PYTHON, find_pythons, python_version

    found = find_pythons()
    assert found, "no Python 3.11+ on PATH"
    assert all(version >= MIN_PYTHON for _, version in found)
    assert python_version(Path("/nonexistent/python")) is None


def test_api_documents_parse() -> None:
    from saymap.engine_client import Aoi, DeviceInfo, JobInfo, SegmentRequest

    gpu = DeviceInfo("cuda", "NVIDIA H100", 81559, "auto: CUDA")
    assert gpu.describe() == "CUDA: NVIDIA H100, 80 GB"
    assert DeviceInfo("cpu", "x86_64", None, "").describe() == "CPU (x86_64)"
    job = JobInfo.from_json(
        {"id": "a", "kind": "segment", "state": "done", "progress": 1, "message": "",
         "created_at": "t", "started_at": None, "finished_at": None, "request": {},
         "result": {"output": "/x.gpkg", "n_features": 3}, "metrics": None, "error": None}
    )  # fmt: skip
    assert job.terminal and job.output == "/x.gpkg"
    body = SegmentRequest(
        raster="/r.tif", prompts=("a",), output="/o.gpkg", aoi=Aoi("EPSG:4326", (0, 0, 1, 1))
    ).to_json()
    assert json.loads(json.dumps(body))["aoi"] == {
        "bounds": [0, 0, 1, 1],
        "wkt": None,
        "crs": "EPSG:4326",
    }
    assert body["prompts"] == ["a"] and body["bands"] is None


def test_data_dir_agrees_with_the_engine(tmp_path: Path) -> None:
    """The plugin's stdlib guess of the data folder is the one the engine uses."""
    if not ENGINE_PYTHON.is_file():
        pytest.skip("no engine venv")
    env = {k: v for k, v in os.environ.items() if k not in {"SAYMAP_DATA_DIR", "XDG_DATA_HOME"}}
    env["HOME"] = str(tmp_path)
    engine_says = subprocess.run(
        [str(ENGINE_PYTHON), "-c", "from saymap.engine.paths import data_dir; print(data_dir())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    plugin_says = subprocess.run(
        [sys.executable, "-c", "from saymap.paths import default_data_dir as d; print(d())"],
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert plugin_says == engine_says == str(tmp_path / ".local" / "share" / "saymap")


def test_build_info_points_at_this_checkout(plugins_dir: Path) -> None:
    from saymap.paths import build_info, source_folder

    assert Path(build_info()["source_dir"]) == ROOT
    assert source_folder() == ROOT


def test_validation_strip_is_the_last_share_of_the_longer_side() -> None:
    from saymap.wizard.plan import strip_bounds, validation_spec

    assert strip_bounds((0.0, 0.0, 100.0, 50.0), 0.2) == ((80.0, 0.0, 100.0, 50.0), "east")
    assert strip_bounds((0.0, 0.0, 50.0, 100.0), 0.25) == ((0.0, 0.0, 50.0, 25.0), "south")
    wide = (10.0, 20.0, 110.0, 40.0)
    assert validation_spec("strip", 0.3, wide, "EPSG:3857") == {
        "area": {"bounds": [80.0, 20.0, 110.0, 40.0], "crs": "EPSG:3857"}
    }
    assert validation_spec("canvas", 0.3, wide, "EPSG:4326")["area"]["bounds"] == list(wide)
    assert validation_spec("fraction", 0.2, None, "") == {"fraction": 0.2}
    with pytest.raises(ValueError, match="no extent"):
        validation_spec("canvas", 0.2, None, "EPSG:4326")


def test_a_task_reports_expected_errors_as_said_and_a_bug_with_its_traceback_logged() -> None:
    from qgis.core import QgsApplication

    from saymap.call_task import CallTask
    from saymap.errors import EngineUnavailable

    logged: list[str] = []
    log = QgsApplication.messageLog()
    log.messageReceived.connect(lambda message, tag, level: logged.append(message))

    def fails_with(exc: Exception) -> tuple[bool, str]:
        def work() -> None:
            raise exc

        errors: list[str] = []
        task = CallTask("test", work, lambda _result: None, errors.append)
        ran = task.run()
        task.finished(ran)
        return ran, errors[0]

    assert fails_with(EngineUnavailable("no engine answers on port 1")) == (
        False,
        "no engine answers on port 1",
    )
    assert not logged
    ran, message = fails_with(KeyError("band"))
    assert not ran and message.startswith("SayMap hit a bug (KeyError: 'band')")
    assert len(logged) == 1 and "Traceback" in logged[0] and "raise exc" in logged[0]
