"""The evaluator: plumbing checked with a model whose answer is known, and `saymap eval`
end to end with a real (untrained) checkpoint on a real synthetic folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from saymap.engine.errors import DatasetError
from saymap.training.evaluate import AT_480, NATIVE, evaluate, open_eval_data
from saymap.training.samples import Sample, SampleList


class RedChannelModel(torch.nn.Module):
    """Says "target" wherever the red channel is bright: a function with a known answer,
    so the evaluator's resizing and bookkeeping can be checked exactly."""

    device = torch.device("cpu")

    def encode_text(self, prompts: list[str]) -> list[str]:
        return prompts

    def forward(self, pixels: torch.Tensor, text: list[str]):
        assert pixels.shape[-1] % 32 == 0 and pixels.shape[-2] % 32 == 0
        assert len(text) == pixels.shape[0]
        return type("Out", (), {"logits": (pixels[:, :1] - 0.5) * 20})


def _sample(mask: np.ndarray, k: int, kind: str = "attribute") -> Sample:
    image = np.zeros((*mask.shape, 3), np.uint8)
    image[..., 0] = mask * 255
    return Sample(image, mask.astype(np.uint8), f"thing {k}", "full", kind, "thing", str(k), "t")


def test_a_perfect_model_scores_100_and_empty_union_counts_as_0() -> None:
    rng = np.random.default_rng(0)
    samples = []
    for k in range(5):
        mask = np.zeros((64, 96), np.uint8)
        y, x = rng.integers(0, 40), rng.integers(0, 60)
        mask[y : y + 20, x : x + 30] = 1
        samples.append(_sample(mask, k))
    samples.append(_sample(np.zeros((64, 96), np.uint8), 9, "group"))  # nothing to find
    result = evaluate(RedChannelModel(), SampleList(samples), batch_size=4)
    native = result.results[NATIVE]
    assert native.n == 6 and native.oiou == 1.0
    assert native.miou == pytest.approx(5 / 6)  # the empty one scores 0, not 1
    assert native.precision["0.9"] == pytest.approx(5 / 6)
    assert result.results[AT_480].oiou > 0.97  # bilinear logits vs nearest ground truth
    assert set(result.by_type) == {"attribute", "group"}


def test_input_size_resizes_and_limit_spreads() -> None:
    mask = np.zeros((100, 120), np.uint8)
    mask[20:80, 30:90] = 1
    ds = SampleList([_sample(mask, k) for k in range(10)])
    result = evaluate(RedChannelModel(), ds, input_size=64, limit=3)
    assert result.results[NATIVE].n == 3 and result.results[NATIVE].oiou > 0.95
    with pytest.raises(DatasetError):
        evaluate(RedChannelModel(), ds, input_size=50)


def test_open_eval_data_tells_kinds_apart(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="none of"):
        open_eval_data(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        open_eval_data(tmp_path / "missing")
    (tmp_path / "r.tif").write_bytes(b"")
    with pytest.raises(DatasetError, match="--labels"):
        open_eval_data(tmp_path / "r.tif")


@pytest.mark.slow
def test_saymap_eval_end_to_end(tmp_path: Path) -> None:
    """A real checkpoint (random weights, MiniLM text encoder) on a real synthetic folder."""
    from saymap.engine.model import SaymapConfig, SaymapModel, save_model
    from saymap.training.synthetic.store import write_synthetic

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    save_model(SaymapModel(SaymapConfig.named("tiny")), tmp_path / "ckpt", {"name": "test"})
    write_synthetic(tmp_path / "synth", 10, seed=5, workers=1)
    out = tmp_path / "eval.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "saymap.engine.cli",
            "eval",
            "--checkpoint",
            str(tmp_path / "ckpt"),
            "--data",
            str(tmp_path / "synth"),
            "--split",
            "train",
            "--limit",
            "8",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert run.returncode == 0, run.stderr
    assert "native" in run.stdout and "480 px" in run.stdout and "oIoU" in run.stdout
    data = json.loads(out.read_text())
    assert data["data_kind"] == "synthetic" and data["results"]["native"]["n"] == 8
    assert 0.0 <= data["results"]["480 px"]["oiou"] <= 1.0
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "saymap.engine.cli",
            "eval",
            "--checkpoint",
            str(tmp_path / "ckpt"),
            "--data",
            str(tmp_path / "synth"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 2 and "exists" in again.stderr
