"""One request plan: the raster is opened and sampled once before the tiles are read, each
input is checked in one place, and one prompt rule gives one sentence to every front door.

Runs on rasters the tests write, so a clone without ../shared runs it too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from saymap.engine import cli, raster
from saymap.engine.errors import OptionError, PromptError, RasterReadError
from saymap.engine.plan import ModelFacts, SegmentOptions, plan_segment
from saymap.engine.prompt import MAX_PROMPT_CHARS, MAX_PROMPTS, check_prompts
from saymap.engine.raster import WindowReader
from tests.engine.server_harness import Engine, engine_session, install_model, tiny_model_folder

# The same wrong prompt, however it arrives.
BAD_PROMPTS = {
    "only whitespace": " \t ",
    "too long": "a" * (MAX_PROMPT_CHARS + 1),
    "a NUL character": "tree\x00s",
}


def write_raster(path: Path, side: int = 96, dtype: str = "uint16") -> Path:
    """A small 16-bit GeoTIFF in UTM 33N at 0.3 m: 16 bits, so the scaling sample is taken."""
    pixels = np.random.default_rng(0).integers(1, 4000, (3, side, side)).astype(dtype)
    with rasterio.open(
        path, "w", driver="GTiff", width=side, height=side, count=3, dtype=dtype,
        crs="EPSG:32633", transform=from_origin(500000, 5000000, 0.3, 0.3),
    ) as dst:  # fmt: skip
        dst.write(pixels)
    return path


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_folder(tmp_path_factory.mktemp("model"))


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], int]]:
    """How often rasterio opened a given file, and the scaling sample was taken, from now."""
    seen: list[str] = []
    real_open = rasterio.open

    def counting_open(target: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(target, str | os.PathLike):
            seen.append(os.path.realpath(os.fspath(target)))
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", counting_open)
    yield lambda path: seen.count(os.path.realpath(path))


def test_one_cli_segment_opens_the_raster_at_most_twice_and_samples_it_once(
    tmp_path: Path,
    model_folder: Path,
    opens: Callable[[Path], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan's open (with the 1024 px scaling sample) and the tile reader's: no more."""
    image = write_raster(tmp_path / "scene.tif")
    output = tmp_path / "trees.gpkg"
    samples: list[str] = []
    real_sample = raster._sample_scaling

    def counting_sample(dataset: Any, *args: Any) -> Any:
        samples.append(dataset.name)
        return real_sample(dataset, *args)

    monkeypatch.setattr(raster, "_sample_scaling", counting_sample)
    monkeypatch.setenv("SAYMAP_DATA_DIR", str(tmp_path / "engine-data"))
    written = opens(image)  # writing it was one
    code = cli.main([
        "segment", str(image), "tree", "-o", str(output), "--checkpoint", str(model_folder),
        "--device", "cpu", "--tile", "64", "--overlap", "16", "--gsd", "native",
        "--no-progress",
    ])  # fmt: skip
    assert code == 0 and output.is_file()
    assert opens(image) - written == 2
    assert len(samples) == 1


def test_a_plan_is_refused_by_the_reader_when_its_raster_changed(tmp_path: Path) -> None:
    """A server job runs the plan its preflight made; a file replaced meanwhile is refused,
    not read on the old grid."""
    image = write_raster(tmp_path / "scene.tif")
    plan = plan_segment(
        image, ["tree"], SegmentOptions(overlap=16, gsd="native"), ModelFacts("t", 64)
    )
    with WindowReader(plan.spec):  # unchanged: reads
        pass
    write_raster(image, side=80)
    with pytest.raises(RasterReadError, match="changed after it was checked"):
        WindowReader(plan.spec).__enter__()


def test_overlap_is_checked_against_the_tile_the_run_will_use(tmp_path: Path) -> None:
    image = write_raster(tmp_path / "scene.tif")
    model = ModelFacts("small", 64)
    with pytest.raises(OptionError, match="small's own tile size: no tile was given"):
        plan_segment(image, ["tree"], SegmentOptions(overlap=64, gsd="native"), model)
    with pytest.raises(OptionError, match="less than the tile size") as given:
        plan_segment(image, ["tree"], SegmentOptions(tile=32, overlap=32, gsd="native"), model)
    assert "no tile was given" not in str(given.value)
    plan = plan_segment(image, [" a  tree "], SegmentOptions(overlap=16, gsd="native"), model)
    assert plan.prompts == ("a tree",) and plan.grid.size == 64 and len(plan.grid) == 4


def test_the_prompt_rule_counts_prompts_and_characters() -> None:
    assert check_prompts(["x"] * MAX_PROMPTS) == ["x"] * MAX_PROMPTS
    with pytest.raises(PromptError, match=f"at most {MAX_PROMPTS} prompts"):
        check_prompts(["x"] * (MAX_PROMPTS + 1))
    assert check_prompts(["a" * MAX_PROMPT_CHARS]) == ["a" * MAX_PROMPT_CHARS]
    for bad in ([], *([p] for p in BAD_PROMPTS.values())):
        with pytest.raises(PromptError):
            check_prompts(bad)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, model_folder: Path) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("engine-data")
    install_model(data_dir, model_folder)
    yield from engine_session(data_dir, "--no-preload")


@pytest.mark.parametrize("kind", sorted(BAD_PROMPTS))
def test_the_cli_and_the_server_refuse_a_bad_prompt_in_the_same_words(
    kind: str,
    engine: Engine,
    model_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plugin shows the server's sentence as it is, so it names no flag and no status."""
    image = write_raster(tmp_path / "scene.tif")
    prompt = BAD_PROMPTS[kind]
    monkeypatch.setenv("SAYMAP_DATA_DIR", str(tmp_path / "engine-data"))
    code = cli.main(["segment", str(image), prompt, "-o", str(tmp_path / "a.gpkg"),
                     "--checkpoint", str(model_folder)])  # fmt: skip
    said = capsys.readouterr().err.strip()
    assert code == 2 and said.startswith("saymap: error: "), said
    cli_text = said.removeprefix("saymap: error: ")

    body = {"raster": str(image), "prompts": [prompt], "output": str(tmp_path / "b.gpkg")}
    with engine.client() as client:
        response = client.post("/v1/segment", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == cli_text
    assert "--" not in cli_text and "422" not in cli_text and "prompt" in cli_text
    assert not (tmp_path / "a.gpkg").exists() and not (tmp_path / "b.gpkg").exists()
