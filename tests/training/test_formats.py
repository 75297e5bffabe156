"""RefSegRS and RRSIS-D readers on tiny fixtures written here in exactly those formats."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from saymap.engine.errors import DatasetError
from saymap.training.coco_masks import decode_polygons, decode_rle, decode_rle_string
from saymap.training.formats import load_refsegrs, load_rrsisd, read_refs


def _tif(path: Path, array: np.ndarray) -> None:
    bands = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=bands.shape[2],
        height=bands.shape[1],
        count=bands.shape[0],
        dtype=bands.dtype,
    ) as dst:
        dst.write(bands)


@pytest.fixture
def refsegrs(tmp_path: Path) -> Path:
    root = tmp_path / "RefSegRS"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for image_id in ("0", "1", "7"):
        _tif(root / "images" / f"{image_id}.tif", rng.integers(0, 255, (64, 64, 3), np.uint8))
        mask = np.zeros((64, 64), np.uint8)
        mask[10 : 20 + int(image_id), 5:25] = 255
        _tif(root / "masks" / f"{image_id}.tif", mask)
    (root / "output_phrase_train.txt").write_text("0 road along the river\n1 vehicle\n")
    (root / "output_phrase_val.txt").write_text("7 the building next to the road\n")
    (root / "output_phrase_test.txt").write_text("1 car in the parking lot\n")
    return root


def test_refsegrs_reads_each_split(refsegrs: Path) -> None:
    train = load_refsegrs(refsegrs, "train")
    assert len(train) == 2
    s = train[0]
    assert s.expression == "road along the river" and s.kind == "full"
    assert s.image.shape == (64, 64, 3) and s.mask.max() == 1 and s.mask.sum() == 10 * 20
    val = load_refsegrs(refsegrs, "val")
    assert val[0].expression == "the building next to the road" and val[0].mask.sum() == 17 * 20


def test_refsegrs_errors_name_the_problem(refsegrs: Path) -> None:
    (refsegrs / "output_phrase_test.txt").write_text("9 ghost\n")
    with pytest.raises(DatasetError, match=r"images/9.tif is missing"):
        load_refsegrs(refsegrs, "test")
    with pytest.raises(DatasetError, match="unknown split"):
        load_refsegrs(refsegrs, "testA")
    with pytest.raises(DatasetError, match="not a RefSegRS folder"):
        load_refsegrs(refsegrs / "images", "train")


def encode_rle_string(counts: list[int]) -> str:
    """The COCO API's rleToString, written out from its description, for fixtures."""
    out = []
    for i, value in enumerate(counts):
        x = value - counts[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_counts(mask: np.ndarray) -> list[int]:
    flat = mask.T.ravel()  # column-major
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return counts


def test_rle_decoding_hand_cases() -> None:
    # 3 x 3 with only the centre set: column-major runs 4, 1, 4 -> "414".
    assert decode_rle_string("414") == [4, 1, 4]
    centre = decode_rle("414", (3, 3))
    assert centre.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    # Column-major: runs [0, 2, 4] on 2 x 3 set the first column.
    assert decode_rle([0, 2, 4], (2, 3)).tolist() == [[1, 0, 0], [1, 0, 0]]
    with pytest.raises(DatasetError):
        decode_rle([1, 2], (2, 3))


def test_compressed_rle_round_trips_random_masks() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        mask = (rng.random((13, 17)) > 0.6).astype(np.uint8)
        counts = rle_counts(mask)
        assert np.array_equal(decode_rle(counts, mask.shape), mask)
        assert np.array_equal(decode_rle(encode_rle_string(counts), mask.shape), mask)


def test_polygon_decoding_covers_the_right_pixels() -> None:
    mask = decode_polygons([[2, 1, 6, 1, 6, 4, 2, 4]], (8, 8))
    expected = np.zeros((8, 8), np.uint8)
    expected[1:4, 2:6] = 1
    assert np.array_equal(mask, expected)


@pytest.fixture
def rrsisd(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "rrsisd").mkdir(parents=True)
    images = root / "images" / "rrsisd" / "JPEGImages"
    images.mkdir(parents=True)
    for k in (1, 2):
        Image.fromarray(np.full((40, 50, 3), 40 * k, np.uint8)).save(images / f"{k:05d}.jpg")
    rle_mask = np.zeros((40, 50), np.uint8)
    rle_mask[5:15, 10:30] = 1
    coco = {
        "images": [
            {"id": 1, "file_name": "00001.jpg", "height": 40, "width": 50},
            {"id": 2, "file_name": "00002.jpg", "height": 40, "width": 50},
        ],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 3,
                "segmentation": [[10, 10, 20, 10, 20, 30, 10, 30]],
            },
            {
                "id": 11,
                "image_id": 2,
                "category_id": 4,
                "segmentation": {"counts": rle_counts(rle_mask), "size": [40, 50]},
            },
            {
                "id": 12,
                "image_id": 2,
                "category_id": 4,
                "segmentation": {
                    "counts": encode_rle_string(rle_counts(rle_mask)),
                    "size": [40, 50],
                },
            },
        ],
        "categories": [{"id": 3, "name": "airplane"}, {"id": 4, "name": "vehicle"}],
    }
    (root / "rrsisd" / "instances.json").write_text(json.dumps(coco))
    refs = [
        {
            "ref_id": 0,
            "ann_id": 10,
            "image_id": 1,
            "split": "train",
            "category_id": 3,
            "sentences": [
                {"sent": "the airplane", "sent_id": 0},
                {"sent": "the grey plane on the left", "sent_id": 1},
            ],
        },
        {
            "ref_id": 1,
            "ann_id": 11,
            "image_id": 2,
            "split": "test",
            "category_id": 4,
            "sentences": [{"sent": "the vehicle", "sent_id": 2}],
        },
        {
            "ref_id": 2,
            "ann_id": 12,
            "image_id": 2,
            "split": "test",
            "category_id": 4,
            "sentences": [{"sent": "the same vehicle, compressed", "sent_id": 3}],
        },
    ]
    (root / "rrsisd" / "refs(unc).p").write_bytes(pickle.dumps(refs))
    return root


def test_rrsisd_reads_refs_polygons_and_rle(rrsisd: Path) -> None:
    train = load_rrsisd(rrsisd, "train")
    assert len(train) == 2  # one sample per sentence
    s = train[1]
    assert s.expression == "the grey plane on the left" and s.class_name == "airplane"
    assert s.image.shape == (40, 50, 3) and s.mask.sum() == 10 * 20
    assert s.mask[10:30, 10:20].all()
    test = load_rrsisd(rrsisd, "test")
    assert len(test) == 2
    assert np.array_equal(test[0].mask, test[1].mask) and test[0].mask.sum() == 200


def test_rrsisd_refuses_a_pickle_that_would_run_code(rrsisd: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (rrsisd / "rrsisd" / "refs(unc).p").write_bytes(pickle.dumps([Exploit()]))
    with pytest.raises(DatasetError, match="refusing to load"):
        load_rrsisd(rrsisd, "train")
    assert not marker.exists()
    with pytest.raises(DatasetError, match="not an RRSIS-D folder"):
        load_rrsisd(tmp_path / "nowhere", "train")


def test_read_refs_accepts_plain_data(tmp_path: Path) -> None:
    path = tmp_path / "refs.p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "sentences": [{"sent": "x"}]}], protocol=2))
    assert read_refs(path)[0]["ref_id"] == 1
