"""Readers for the published referring remote-sensing benchmarks: RefSegRS and RRSIS-D.

RefSegRS (Yuan et al., RRSIS/LGCE):
    ROOT/images/<id>.tif, ROOT/masks/<id>.tif,
    ROOT/output_phrase_{train,val,test}.txt with lines "<id> <phrase>".
RRSIS-D (Liu et al., RMSIN), the refer format of RefCOCO:
    refs(unc).p    a pickled list of refs {ref_id, ann_id, image_id, split,
                   sentences: [{sent, ...}], category_id, ...}
    instances.json COCO: images, annotations (segmentation as polygons or RLE), categories
    images under images/rrsisd/JPEGImages/ (or JPEGImages/, images/; or name the folder).
Each sentence of a ref is one sample, as the anchors evaluate them.

Pickles: a pickle can run any code while it loads, so a pickle from an untrusted source is
a program, not data. SayMap reads `refs(unc).p` only from a folder or file the user names
(never one it found or fetched itself), and with an unpickler that refuses every class or
function reference: a refs file is plain lists, dicts, strings and numbers, and anything
else is rejected with a DatasetError before it can run.
"""

from __future__ import annotations

import io
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from saymap.engine.errors import DatasetError
from saymap.training.coco_masks import decode_segmentation
from saymap.training.samples import Sample, binary_mask

SPLITS = ("train", "val", "test")


def read_image(path: Path) -> np.ndarray:
    """Any image GDAL reads (TIFF, JPEG, PNG) as (H, W, 3) uint8; 16-bit is stretched."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                data = src.read(list(range(1, min(src.count, 3) + 1)))
    except RasterioIOError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc
    if data.shape[0] < 3:
        data = np.repeat(data[:1], 3, axis=0)
    if data.dtype != np.uint8:
        out = np.empty(data.shape, np.uint8)
        for i, band in enumerate(data.astype(np.float32)):
            low, high = np.percentile(band, (2, 98))
            out[i] = np.clip((band - low) / max(high - low, 1e-6) * 255 + 0.5, 0, 255)
        data = out
    return np.ascontiguousarray(data.transpose(1, 2, 0))


def read_mask(path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return binary_mask(src.read(1))
    except RasterioIOError as exc:
        raise DatasetError(f"cannot read mask {path}: {exc}") from exc


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")


class RefSegRSDataset:
    """One split of RefSegRS; pixels read per sample."""

    def __init__(self, root: Path, entries: list[tuple[str, str]]) -> None:
        self.root = root
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        image_id, phrase = self.entries[index]
        image = read_image(self.root / "images" / f"{image_id}.tif")
        mask = read_mask(self.root / "masks" / f"{image_id}.tif")
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"RefSegRS {image_id}: mask {mask.shape} vs image {image.shape}")
        return Sample(
            image, mask, phrase, "full", "sentence", "", f"refsegrs/{image_id}/{index}", "refsegrs"
        )


def load_refsegrs(root: str | Path, split: str = "train") -> RefSegRSDataset:
    """RefSegRS's `split` (train, val or test) from its folder."""
    root = Path(root)
    _check_split(split)
    listing = root / f"output_phrase_{split}.txt"
    for needed in (root / "images", root / "masks", listing):
        if not needed.exists():
            raise DatasetError(f"{root} is not a RefSegRS folder: {needed.name} is missing")
    entries = []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        image_id, _, phrase = line.strip().partition(" ")
        if not phrase.strip():
            raise DatasetError(f"{listing.name} line {number}: no phrase after the image id")
        if not (root / "images" / f"{image_id}.tif").exists():
            raise DatasetError(f"{listing.name} line {number}: images/{image_id}.tif is missing")
        entries.append((image_id, phrase.strip()))
    return RefSegRSDataset(root, entries)


class _PlainDataUnpickler(pickle.Unpickler):
    """Loads lists, dicts, strings and numbers; refuses every global (class or function)."""

    def find_class(self, module: str, name: str):
        raise DatasetError(
            f"refusing to load {module}.{name} from a refs pickle: a refs file holds only "
            "plain data, and anything else could run code"
        )


def read_refs(path: Path) -> list[dict]:
    """A refer-format refs pickle, read with the plain-data unpickler."""
    try:
        refs = _PlainDataUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DatasetError(f"{path} is not a refs pickle: {exc}") from exc
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise DatasetError(f"{path}: expected a list of refs (dicts)")
    return refs


def _find(root: Path, names: list[str], what: str) -> Path:
    for name in names:
        if (root / name).exists():
            return root / name
    raise DatasetError(
        f"{root} is not an RRSIS-D folder: no {what} (looked for {', '.join(names)})"
    )


class RRSISDDataset:
    """One split of RRSIS-D: one sample per (ref, sentence); masks decoded per sample."""

    def __init__(self, images: Path, items: list[tuple], images_meta: dict, anns: dict) -> None:
        self.images = images
        self.items = items  # (image_id, ann_id, sentence, class name, ref_id)
        self.images_meta = images_meta
        self.anns = anns

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        image_id, ann_id, sentence, class_name, ref_id = self.items[index]
        meta = self.images_meta[image_id]
        image = read_image(self.images / meta["file_name"])
        h, w = image.shape[:2]
        mask = decode_segmentation(self.anns[ann_id]["segmentation"], h, w)
        if mask.shape != (h, w):
            raise DatasetError(f"RRSIS-D ann {ann_id}: mask {mask.shape} vs image {(h, w)}")
        return Sample(
            image,
            mask,
            sentence,
            "full",
            "sentence",
            class_name,
            f"rrsisd/{ref_id}/{index}",
            "rrsisd",
        )


def load_rrsisd(
    root: str | Path,
    split: str = "train",
    refs: str | Path | None = None,
    instances: str | Path | None = None,
    images: str | Path | None = None,
) -> RRSISDDataset:
    """RRSIS-D's `split` from the folder the user names (or its files named one by one).

    Looks for refs(unc).p and instances.json in ROOT or ROOT/rrsisd, and for images in
    ROOT/images/rrsisd/JPEGImages, ROOT/JPEGImages or ROOT/images.
    """
    root = Path(root)
    _check_split(split)
    refs_path = Path(refs) if refs else _find(root, ["refs(unc).p", "rrsisd/refs(unc).p"], "refs")
    inst_path = (
        Path(instances)
        if instances
        else _find(root, ["instances.json", "rrsisd/instances.json"], "instances.json")
    )
    image_dir = (
        Path(images)
        if images
        else _find(root, ["images/rrsisd/JPEGImages", "JPEGImages", "images"], "image folder")
    )
    try:
        coco = json.loads(inst_path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{inst_path} is not readable JSON: {exc}") from exc
    images_meta = {im["id"]: im for im in coco.get("images", [])}
    anns = {a["id"]: a for a in coco.get("annotations", [])}
    categories = {c["id"]: c.get("name", "") for c in coco.get("categories", [])}
    items = []
    for ref in read_refs(refs_path):
        if ref.get("split") != split:
            continue
        ann_id, image_id = ref.get("ann_id"), ref.get("image_id")
        if ann_id not in anns or image_id not in images_meta:
            raise DatasetError(
                f"ref {ref.get('ref_id')}: annotation {ann_id} or image {image_id} is not in "
                f"{inst_path.name}"
            )
        category = categories.get(ref.get("category_id", anns[ann_id].get("category_id")), "")
        for sent in ref.get("sentences", []):
            text = (sent.get("sent") or sent.get("raw") or "").strip()
            if text:
                items.append((image_id, ann_id, text, category, ref.get("ref_id")))
    return RRSISDDataset(image_dir, items, images_meta, anns)
