"""The synthetic benchmark: files on disk, determinism, splits, and unambiguous sentences.

The unambiguity check reads what was written (instance raster, GeoPackage attributes and
the structured query of each jsonl line), re-measures the objects from the pixels, and
resolves each query itself: the sentence text plays no part.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio

from saymap.engine.errors import DatasetError, OutputError
from saymap.training.expressions import Query, resolve
from saymap.training.synthetic.layout import CLASSES
from saymap.training.synthetic.scene import generate_scene, measure
from saymap.training.synthetic.store import load_synthetic, split_assignment, write_synthetic

N = 24


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    write_synthetic(out, N, seed=3, workers=2)
    return out


def _records(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "expressions.jsonl").read_text().splitlines()]


def test_folder_layout_and_manifest(synth: Path) -> None:
    manifest = json.loads((synth / "manifest.json").read_text())
    assert manifest["n"] == N and manifest["seed"] == 3 and manifest["style"] == "a"
    assert sum(manifest["splits"].values()) == N
    for sub in ("images", "instances", "labels"):
        assert len(list((synth / sub).iterdir())) == N
    with rasterio.open(synth / "images" / "a000000.tif") as src:
        assert src.count == 3 and src.dtypes[0] == "uint8"
        assert src.crs.to_epsg() == 32633 and src.res == (0.5, 0.5)
        bounds = src.bounds
    with rasterio.open(synth / "instances" / "a000000.tif") as src:
        assert src.dtypes[0] == "uint16" and src.bounds == bounds
    info = pyogrio.read_info(synth / "labels" / "a000000.gpkg")
    assert {"instance_id", "class", "colour", "size", "orientation"} <= set(info["fields"])
    assert info["crs"] == "EPSG:32633"


def test_every_class_appears_and_every_expression_type(synth: Path) -> None:
    manifest = json.loads((synth / "manifest.json").read_text())
    assert set(manifest["classes"]) == set(CLASSES)
    types = Counter(r["type"] for r in _records(synth) if r["kind"] == "full")
    assert set(types) == {"class", "attribute", "position", "relation", "comparison", "group"}


def _facts_from_disk(root: Path, scene_id: str):
    """Object facts from the files: labels from the GeoPackage, geometry from pixels."""
    with rasterio.open(root / "instances" / f"{scene_id}.tif") as src:
        instances = src.read(1)
    _, _, _, fields = pyogrio.raw.read(root / "labels" / f"{scene_id}.gpkg")
    names = pyogrio.read_info(root / "labels" / f"{scene_id}.gpkg")["fields"].tolist()
    col = dict(zip(names, fields, strict=True))
    labels = {
        int(i): {
            "class": c,
            "colour": colour or None,
            "shape": shape or None,
            "orientation": orientation or None,
        }
        for i, c, colour, shape, orientation in zip(
            col["instance_id"],
            col["class"],
            col["colour"],
            col["shape"],
            col["orientation"],
            strict=True,
        )
    }
    return instances, measure(instances, labels)


def test_every_full_expression_resolves_to_exactly_its_mask(synth: Path) -> None:
    by_scene: dict[str, list[dict]] = {}
    for r in _records(synth):
        by_scene.setdefault(r["scene_id"], []).append(r)
    checked = 0
    for scene_id, records in by_scene.items():
        instances, facts = _facts_from_disk(synth, scene_id)
        h, w = instances.shape
        for r in records:
            query = Query.from_dict(r["query"])
            denoted = resolve(query, facts, w, h)
            ids = set(r["instance_ids"])
            assert ids <= set(np.unique(instances).tolist())  # the mask is not empty
            if r["kind"] == "weak":
                # WREL's weak label: the bare class name, one of possibly several.
                assert r["expression"] == r["class"] and ids <= denoted
            else:
                assert denoted == ids, (scene_id, r["expression"], sorted(denoted), ids)
                if r["type"] != "group":
                    assert len(ids) == 1
                checked += 1
    assert checked > 100


def test_resolver_semantics_on_hand_made_objects() -> None:
    from saymap.training.expressions import ObjectFacts

    def obj(i, cls, x0, y0, x1, y1, colour=None, support=0):
        area = (x1 - x0) * (y1 - y0)
        return ObjectFacts(
            i, cls, colour, None, None, area, (x0 + x1) / 2, (y0 + y1) / 2, x0, y0, x1, y1, support
        )

    objs = [
        obj(1, "building", 100, 100, 140, 140, "red"),
        obj(2, "vehicle", 80, 110, 90, 116, "white"),  # left of the building, 10 px
        obj(3, "vehicle", 200, 20, 210, 26, "white"),  # top right, far away
        obj(4, "vehicle", 10, 200, 30, 208, "red", support=5),  # on the road
        obj(5, "road", 0, 195, 256, 215),
    ]
    q = Query("vehicle", relation="left of", anchor=Query("building"))
    assert resolve(q, objs, 256, 256) == {2}
    assert resolve(Query("vehicle", colour="white"), objs, 256, 256) == {2, 3}
    assert resolve(Query("vehicle", superlative="largest"), objs, 256, 256) == {4}
    assert resolve(Query("vehicle", region="top right"), objs, 256, 256) == {3}
    assert resolve(Query("vehicle", relation="on", anchor=Query("road")), objs, 256, 256) == {4}
    # An anchor that is not unique denotes nothing.
    q = Query("building", relation="next to", anchor=Query("vehicle"))
    assert resolve(q, objs, 256, 256) == frozenset()


def test_deterministic_for_seed_and_independent_of_order() -> None:
    a = generate_scene(11, 5, "a")
    b = generate_scene(11, 5, "a")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instances, b.instances)
    assert [e.text for e in a.expressions] == [e.text for e in b.expressions]
    c = generate_scene(12, 5, "a")
    assert not np.array_equal(a.image, c.image)


def test_style_b_renders_the_same_kind_of_scene_differently() -> None:
    a = generate_scene(0, 1, "a")
    b = generate_scene(0, 1, "b")
    assert not np.array_equal(a.image, b.image)
    # Mean ground colour differs (green vs sand): style b is the held-out look.
    ground_a = a.image[a.instances == 0].mean(axis=0)
    ground_b = b.image[b.instances == 0].mean(axis=0)
    assert ground_b[0] - ground_a[0] > 30


def test_drawn_size_agrees_with_measured_size() -> None:
    for index in range(10):
        scene = generate_scene(4, index, "a")
        by_id = {f.instance_id: f for f in scene.facts}
        for obj in scene.layout.objects:
            if obj.size is not None:
                assert by_id[obj.instance_id].size == obj.size, (index, obj.class_name)


def test_splits_are_deterministic_and_disjoint(synth: Path) -> None:
    assert split_assignment(3, N) == split_assignment(3, N)
    train = {s.sample_id.split(":")[0] for s in load_synthetic(synth, "train")}
    test = {s.sample_id.split(":")[0] for s in load_synthetic(synth, "test")}
    assert train and test and not train & test


def test_loader_yields_samples_with_their_masks(synth: Path) -> None:
    ds = load_synthetic(synth, "train", kinds=("full",))
    assert len(ds) > 0
    s = ds[0]
    assert s.image.shape == (256, 256, 3) and s.image.dtype == np.uint8
    assert s.mask.dtype == np.uint8 and s.mask.any() and s.kind == "full"
    weak = load_synthetic(synth, None, kinds=("weak",))
    assert all(weak[i].expression == weak[i].class_name for i in range(0, len(weak), 17))


def test_refuses_a_non_empty_folder_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(OutputError):
        write_synthetic(tmp_path / "x", 2)
    with pytest.raises(DatasetError):
        write_synthetic(tmp_path / "y", 0)
    with pytest.raises(DatasetError):
        load_synthetic(tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "y").exists()


def test_command_line_makes_a_dataset(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "saymap.engine.cli",
            "data",
            "synth",
            "--out",
            str(out),
            "--n",
            "4",
            "--seed",
            "2",
            "--style",
            "b",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["style"] == "b" and manifest["n"] == 4
    again = subprocess.run(
        [sys.executable, "-m", "saymap.engine.cli", "data", "synth", "--out", str(out), "--n", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "not empty" in again.stderr
