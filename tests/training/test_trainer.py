"""The trainer on small painted scenes: stages, banks, bad input, and resume after kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from saymap.engine.errors import DatasetError
from saymap.engine.model import load_model
from saymap.training.recipe import RecipeError, load_recipe, recipe_from_dict
from saymap.training.samples import SampleList
from saymap.training.trainer import train
from saymap.training.wrel import draw_batch, ema_momentum, split_pools
from tests.training.painted import painted_samples

ROOT = Path(__file__).resolve().parents[2]


def small_recipe(method: str = "lrb-wrel", **run) -> dict:
    return {
        "data": {"chip_size": 64, "full_ratio": 0.5},
        "optim": {"steps": 10, "batch_size": 4, "warmup_steps": 2},
        "wrel": {"method": method, "bank_steps": 4},
        "run": {"checkpoint_every": 3, "eval_every": 0, "device": "cpu", **run},
    }


def test_lrb_wrel_runs_its_three_stages_and_saves_a_loadable_model(tmp_path: Path) -> None:
    events = []
    result = train(
        recipe_from_dict(small_recipe()),
        tmp_path,
        painted_samples(6),
        painted_samples(2, seed=1),
        events=events.append,
        resume=False,
    )
    stages = [e.stage for e in events]
    assert stages.index("full") < stages.index("bank") < stages.index("mix")
    assert stages.count("bank") == 4 and stages[-1] == "done"
    model = load_model(result.model_dir)
    card = json.loads((result.model_dir / "model_card.json").read_text())
    assert card["method"] == "lrb-wrel" and card["classes"] == ["disc", "square"]
    kept = "class-level bank kept" in result.notes[0]
    assert (model.class_bank is not None) == kept
    if kept:  # a bare class name now goes through the learned entry; a sentence does not
        plain = model.text_encoder.encode(["square"]).embeddings
        assert not torch.allclose(model.encode_text(["square"]).embeddings, plain)
    assert torch.equal(
        model.encode_text(["the red square"]).embeddings,
        model.text_encoder.encode(["the red square"]).embeddings,
    )


def test_full_ratio_and_batch_share_are_honoured() -> None:
    data = painted_samples(50)
    pools = split_pools(data, 0.3, seed=0)
    assert len(pools.weak) == 100
    assert 20 <= len(pools.full) <= 40  # 30 % of 100, drawn per sample id
    picks = draw_batch(pools, 8, 0.25, seed=0, stage=2, step=7)
    assert picks == draw_batch(pools, 8, 0.25, seed=0, stage=2, step=7)
    assert [ema_momentum(e) for e in (0, 0.5, 1, 2, 3, 9)] == pytest.approx(
        [0.95, 0.97, 0.99, 0.9945, 0.9995, 0.9995]
    )


def test_bad_inputs_name_the_problem(tmp_path: Path) -> None:
    weak_only = SampleList([s for s in painted_samples(2) if s.kind == "weak"])
    with pytest.raises(DatasetError, match="LRB-WREL stage 1 needs full expressions"):
        train(recipe_from_dict(small_recipe()), tmp_path / "a", weak_only)
    with pytest.raises(DatasetError, match="accurate-only training needs full expressions"):
        train(recipe_from_dict(small_recipe("accurate-only")), tmp_path / "b", weak_only)
    with pytest.raises(RecipeError, match=r"unknown key\(s\) in \[optim\]: stepz"):
        recipe_from_dict({"optim": {"stepz": 3}})
    with pytest.raises(RecipeError, match="unknown recipe section"):
        recipe_from_dict({"optimiser": {}})
    with pytest.raises(RecipeError, match="no recipe file or shipped recipe"):
        load_recipe("no-such-recipe")


def test_naive_wrel_without_sentences_warns(tmp_path: Path, caplog) -> None:
    weak_only = SampleList([s for s in painted_samples(2) if s.kind == "weak"])
    recipe = small_recipe("naive-wrel")
    recipe["optim"]["steps"] = 2
    train(recipe_from_dict(recipe), tmp_path, weak_only)
    assert "naive WREL trains on class names alone" in caplog.text


RUNNER = """
import json, sys, torch
torch.set_num_threads(1)
from tests.training.painted import painted_samples
from saymap.training.recipe import recipe_from_dict
from saymap.training.trainer import train
recipe = recipe_from_dict(json.loads(sys.argv[2]))
res = train(recipe, sys.argv[1], painted_samples(6), painted_samples(2, seed=1),
            events=lambda e: print(e.stage, e.step, flush=True))
print("METRICS", json.dumps(res.metrics), flush=True)
"""


def run_training(out: Path, recipe: dict, kill_after_state: bool = False) -> dict | None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-c", RUNNER, str(out), json.dumps(recipe)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    if kill_after_state:
        deadline = time.monotonic() + 120
        while not (out / "state" / "state.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no state was saved"
            time.sleep(0.05)
        progress = json.loads((out / "state" / "state.json").read_text())["progress"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert progress["stage_index"] < 3, "killed too late to test a resume"
        return None
    stdout, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout
    line = next(x for x in stdout.splitlines() if x.startswith("METRICS"))
    return json.loads(line.split(" ", 1)[1])


@pytest.mark.slow
def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    recipe = small_recipe()
    recipe["optim"]["steps"] = 12
    straight = run_training(tmp_path / "straight", recipe)
    run_training(tmp_path / "killed", recipe, kill_after_state=True)
    resumed = run_training(tmp_path / "killed", recipe)
    assert resumed == pytest.approx(straight, abs=1e-6)


def test_resume_refuses_other_settings_or_data_and_names_them(tmp_path: Path) -> None:
    recipe = small_recipe("naive-wrel")
    recipe["optim"]["steps"] = 3
    train(recipe_from_dict(recipe), tmp_path, painted_samples(3))
    changed = {**recipe, "optim": {**recipe["optim"], "lr": 1e-3}}
    with pytest.raises(RecipeError, match=r"optim\.lr: 0\.0003 → 0\.001.*--fresh"):
        train(recipe_from_dict(changed), tmp_path, painted_samples(3))
    with pytest.raises(RecipeError, match="training samples: 12 → 16"):
        train(recipe_from_dict(recipe), tmp_path, painted_samples(4))
    # Where and how often are not what is trained: those may change on resume.
    moved = {**recipe, "run": {**recipe["run"], "checkpoint_every": 1, "device": "auto"}}
    train(recipe_from_dict(moved), tmp_path, painted_samples(3))


def test_dmols_objective_trains_its_heads(tmp_path: Path) -> None:
    from saymap.training.dmols import DualModalObjectLearning

    torch.manual_seed(0)
    head = DualModalObjectLearning(160, 384)
    visual = torch.randn(2, 160, 4, 4, requires_grad=True)
    words = torch.randn(2, 20, 384, requires_grad=True)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[:, :5] = True
    loss = head(visual, words, mask, ratio=0.5)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert visual.grad is not None and visual.grad.abs().sum() > 0  # reaches the backbone
    assert words.grad[:, 5:].abs().sum() == 0  # padding words are never reconstructed

    recipe = small_recipe("naive-wrel")
    recipe["optim"]["steps"] = 2
    recipe["loss"] = {"dmols_weight": 0.5}
    result = train(recipe_from_dict(recipe), tmp_path, painted_samples(2))
    assert "dmols" not in "".join(load_model(result.model_dir).state_dict())  # off at inference


DDP_RUNNER = """
import hashlib, json, os, sys, torch
torch.set_num_threads(1)
from tests.training.painted import painted_samples
from saymap.training.recipe import recipe_from_dict
from saymap.training.trainer import Trainer
def digest(tensors):
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode()); h.update(tensors[key].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()
trainer = Trainer(recipe_from_dict(json.loads(sys.argv[2])), sys.argv[1], painted_samples(6),
                  painted_samples(2, seed=1))
initial = digest(trainer.model.state_dict())
trainer.run(resume=False)
weights = {k: v for k, v in trainer.current_model().state_dict().items()
           if not k.startswith("class_bank.")}
print("RANK", os.environ["RANK"], json.dumps({
    "initial": initial, "final": digest(weights), "banks": digest(trainer.banks.entries),
    "dmols": digest(trainer.dmols.state_dict()), "saved_weights": digest(
        {k: v for k, v in weights.items() if not k.startswith("text_encoder.")})}), flush=True)
"""


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


@pytest.mark.slow
def test_runs_under_torchrun_with_two_processes(tmp_path: Path) -> None:
    """Data-parallel on CPU (gloo): the same code path a multi-GPU torchrun takes with NCCL.
    Each rank draws its own batches, so only averaged gradients (DDP for the model, the
    explicit all-reduce for the banks and D-MOLS heads) leave both with the same weights."""
    script = tmp_path / "runner.py"
    script.write_text(DDP_RUNNER)
    recipe = small_recipe()
    recipe["optim"].update(steps=4, batch_size=2)
    recipe["loss"] = {"dmols_weight": 0.3}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    out = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path / "run"),
            json.dumps(recipe),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = dict(
        line.split(" ", 2)[1:] for line in out.stdout.splitlines() if line.startswith("RANK ")
    )
    assert sorted(ranks) == ["0", "1"], out.stdout  # both ranks finished
    first, second = (json.loads(ranks[r]) for r in ("0", "1"))
    assert first["final"] != first["initial"]  # the model trained
    assert first == second  # and both ranks trained the same weights, banks and heads
    progress = json.loads((tmp_path / "run" / "state" / "state.json").read_text())["progress"]
    assert (progress["stage_index"], progress["step"]) == (3, 0)  # full, bank, mix all done
    assert progress["model_steps_done"] == 4  # stages 1 and 3 (the bank stage is not counted)
    saved = load_model(tmp_path / "run" / "model").state_dict()
    saved = {k: v for k, v in saved.items() if not k.startswith(("class_bank.", "text_encoder."))}
    assert _digest(saved) == first["saved_weights"]  # rank 0 wrote what it trained
