"""The training loop: supervised steps, WREL mixing and the three stages of LRB-WREL.

`train(recipe, out_dir, train_set, val_set)` is the one entry point for the CLI and the
engine server. Stages (by `wrel.method`):
  accurate-only: the full expressions alone;
  naive-wrel:    full and weak (class-name) samples mixed as they are;
  lrb-wrel:      stage 1 on the full expressions; stage 2 fits the reference banks with the
                 model frozen; stage 3 trains a student on the mix, weak samples through
                 their bank entry, while an EMA teacher follows; the teacher is the result.
Every step's batch is a pure function of (seed, stage, step), and the state is saved every
`checkpoint_every` steps, so a killed run resumes where it stopped. The parts live beside:
the stage plan and schedule in schedule.py, the banks in bank_stage.py, saving and resuming
in train_state.py, the model card in model_card.py.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saymap.engine.device import choose_device
from saymap.engine.errors import Cancelled, DatasetError
from saymap.engine.heap import keep_heap
from saymap.engine.model import SaymapConfig, SaymapModel, load_model, save_model
from saymap.engine.model.outputs import SegmentationOutput, TextFeatures
from saymap.engine.model.reference_bank import attach_class_bank
from saymap.engine.registry import resolve_checkpoint
from saymap.training.augment import PhotometricAugment
from saymap.training.bank_stage import BankStage
from saymap.training.batching import TextCache, autocast, to_tensors
from saymap.training.distributed import average_gradients, barrier, init_distributed, wrap_model
from saymap.training.dmols import DualModalObjectLearning
from saymap.training.evaluate import evaluate_by_kind
from saymap.training.losses import segmentation_loss
from saymap.training.model_card import model_card
from saymap.training.pretrained import load_pretrained_backbone
from saymap.training.recipe import Recipe
from saymap.training.samples import SampleDataset
from saymap.training.schedule import param_groups, plan_stages, poly_lr
from saymap.training.train_state import Progress, RunParts, restore_run, save_run
from saymap.training.wrel import (
    Pools,
    draw_batch,
    draw_mixed_batch,
    ema_momentum,
    ema_update,
    split_pools,
)

log = logging.getLogger(__name__)


@dataclass
class TrainEvent:
    stage: str
    step: int  # global step over all stages
    total_steps: int
    loss: float | None = None
    lr: float | None = None
    metrics: dict[str, float] | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict[str, float]
    steps: int
    seconds: float
    notes: list[str] = field(default_factory=list)


EventSink = Callable[[TrainEvent], None]


def pick_device(requested: str) -> torch.device:
    device, reason = choose_device(requested)
    log.info("training on %s (%s)", device, reason)
    return device


class Trainer:
    """The step loop: model and bank steps in stage order, with events, validation, saves
    and cancellation between steps."""

    def __init__(
        self,
        recipe: Recipe,
        out_dir: Path,
        train_set: SampleDataset,
        val_set: SampleDataset | None,
        events: EventSink | None = None,
        cancel: threading.Event | None = None,
        device: str | None = None,
    ) -> None:
        self.recipe, self.out_dir = recipe, Path(out_dir)
        self.train_set, self.val_set = train_set, val_set
        self.events = events or (lambda e: None)
        self.cancel = cancel or threading.Event()
        self.dist = init_distributed()
        requested = device or recipe.run.device
        if self.dist.enabled and torch.cuda.is_available() and requested in ("auto", "cuda"):
            requested = f"cuda:{self.dist.local_rank}"
        self.device = pick_device(requested)
        keep_heap()  # a CPU step otherwise faults its ~280 MB of activations in again
        torch.manual_seed(recipe.run.seed)
        self.model = self._build_model().to(self.device)
        self.forward_model = wrap_model(self.model, self.dist, self.device)
        self.pools = split_pools(
            train_set, recipe.data.full_ratio, recipe.run.seed, recipe.data.source_repeat
        )
        self.augment = PhotometricAugment()
        self.rng = np.random.default_rng(recipe.run.seed)  # augmentation draws only
        self.stages = plan_stages(recipe, self.pools)
        self.total = sum(steps for _, steps in self.stages)
        self.text = TextCache(self.model)
        config = self.model.config
        self.dmols = (
            DualModalObjectLearning(config.hidden_sizes[2], config.text_hidden_size).to(self.device)
            if recipe.loss.dmols_weight > 0
            else None
        )
        extra = list(self.dmols.parameters()) if self.dmols is not None else []
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, extra, recipe.optim.backbone_lr_scale),
            lr=recipe.optim.lr,
            weight_decay=recipe.optim.weight_decay,
        )
        self.banks = BankStage(recipe, self.pools, self.model, self.device)
        self.parts = RunParts(
            self.model,
            self.banks.entries,
            self.dmols,
            {"model": self.optimizer, "bank": self.banks.optimizer},
        )
        self.teacher: SaymapModel | None = None
        self.model_steps_done = 0  # drives the poly schedule across stages 1 and 3

    def _build_model(self) -> SaymapModel:
        spec = self.recipe.model
        if spec.init:
            model = load_model(resolve_checkpoint(spec.init), device="cpu")
            if spec.overrides:
                raise DatasetError("model.overrides cannot change a model loaded with model.init")
            attach_class_bank(model, [], None)
            return model.train()
        model = SaymapModel(SaymapConfig.named(spec.config, **spec.overrides))
        load_pretrained_backbone(model)  # converted weights (coral:...); a no-op otherwise
        return model.train()

    # -- one step of each kind -------------------------------------------------------------
    def _model_step(self, stage_index: int, stage: str, step: int) -> float:
        r = self.recipe
        lr = poly_lr(
            r.optim.lr,
            self.model_steps_done,
            self.total_model_steps,
            r.optim.poly_power,
            r.optim.warmup_steps,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(r.optim.grad_accum):
            picks = self._draw(stage_index, stage, step * r.optim.grad_accum + micro)
            loss = self._loss(picks, stage) / r.optim.grad_accum
            loss.backward()
            total += loss.item()
        if self.dmols is not None:
            average_gradients(list(self.dmols.parameters()), self.dist)
        if r.optim.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), r.optim.clip_grad)
        self.optimizer.step()
        self.model_steps_done += 1
        if stage == "mix" and self.teacher is not None:
            epoch = self.stage_step_samples(step) / max(
                1, len(self.pools.full) + len(self.pools.weak)
            )
            ema_update(self.teacher, self.model, ema_momentum(epoch))
        self._last_lr = lr
        return total

    def stage_step_samples(self, step: int) -> int:
        return (step + 1) * self.recipe.optim.batch_size * self.recipe.optim.grad_accum

    def _draw(self, stage_index: int, stage: str, step: int) -> list[tuple[int, bool]]:
        r = self.recipe
        pools = self.pools
        if stage == "full" or (r.wrel.method == "accurate-only"):
            pools = Pools(pools.full, [], pools.classes, [])
        elif stage == "bank":
            pools = Pools([], pools.weak, pools.classes, pools.weak_class)
        share = r.wrel.full_share_per_batch if stage in ("supervised", "mix") else None
        if r.data.real_share_per_batch and self.pools.real:
            return draw_mixed_batch(
                pools,
                self.pools.real,
                r.data.real_share_per_batch,
                r.optim.batch_size,
                share,
                r.run.seed,
                stage_index,
                step,
                self.dist.rank,
            )
        return draw_batch(
            pools, r.optim.batch_size, share, r.run.seed, stage_index, step, self.dist.rank
        )

    def _loss(self, picks: list[tuple[int, bool]], stage: str) -> torch.Tensor:
        """One forward over the whole batch (full and weak samples together)."""
        samples = [self.train_set[self.pools.weak[j] if weak else j] for j, weak in picks]
        if self.recipe.data.augment:  # real chips only: synthetic scenes vary by design
            samples = [
                s if s.source == "synthetic" else replace(s, image=self.augment(s.image, self.rng))
                for s in samples
            ]
        pixels, masks = to_tensors(samples, self.recipe.data.chip_size, self.device)
        weak_rows = [k for k, (_, weak) in enumerate(picks) if weak]
        text = self.text([s.expression for s in samples])
        if stage == "mix" and weak_rows:  # weak samples through their learned bank entry
            text = self.banks.route_weak(
                self.model,
                text,
                [samples[k].expression for k in weak_rows],
                weak_rows,
                [picks[k][0] for k in weak_rows],
            )
        out, loss = self._forward_loss(pixels, text, masks)
        weight = self.recipe.wrel.ema_consistency_weight
        if stage == "mix" and self.teacher is not None and weight and weak_rows:
            rows = torch.tensor(weak_rows, device=self.device)
            with torch.no_grad():
                target = torch.sigmoid(self.teacher(pixels, text).logits.float()[rows])
            student = torch.sigmoid(out.logits.float()[rows])
            loss = loss + weight * torch.nn.functional.mse_loss(student, target)
        return loss

    def _forward_loss(
        self, pixels: torch.Tensor, text: TextFeatures, masks: torch.Tensor
    ) -> tuple[SegmentationOutput, torch.Tensor]:
        """The segmentation loss, plus D-MOLS on the stride-16 features when it is on."""
        with autocast(self.device):
            out = self.forward_model(pixels, text, output_features=self.dmols is not None)
            loss = segmentation_loss(out, masks, self.recipe.loss)
            if self.dmols is not None and out.features is not None and out.words is not None:
                aux = self.dmols(
                    out.features[2],
                    out.words,
                    text.expand(pixels.shape[0]).mask,
                    self.recipe.loss.dmols_mask_ratio,
                )
                loss = loss + self.recipe.loss.dmols_weight * aux
        return out, loss

    def _bank_step(self, stage_index: int, step: int) -> float:
        weak = [j for j, _ in self._draw(stage_index, "bank", step)]
        self._last_lr = self.recipe.wrel.bank_lr
        return self.banks.step(self.model, self.train_set, weak, self.dist)

    def _save(self, stage_index: int, step: int) -> None:
        progress = Progress(stage_index, step, self.model_steps_done)
        save_run(
            self.out_dir,
            self.parts,
            self.teacher,
            progress,
            self.recipe,
            len(self.train_set),
            self.dist,
        )

    # -- the run -----------------------------------------------------------------------
    @property
    def total_model_steps(self) -> int:
        return sum(steps for name, steps in self.stages if name != "bank")

    def run(self, resume: bool = True) -> TrainResult:
        start = time.monotonic()
        first_stage, first_step = 0, 0
        if resume:
            progress, self.teacher = restore_run(
                self.out_dir, self.parts, self.recipe, len(self.train_set)
            )
            first_stage, first_step = progress.stage_index, progress.step
            self.model_steps_done = progress.model_steps_done
        done_before = sum(steps for _, steps in self.stages[:first_stage]) + first_step
        global_step = done_before
        r = self.recipe
        for stage_index, (stage, steps) in enumerate(self.stages):
            if stage_index < first_stage:
                continue
            if stage == "mix" and self.teacher is None:
                self.teacher = copy.deepcopy(self.model).eval()
                self.teacher.requires_grad_(False)
            if stage == "bank":
                self.model.requires_grad_(False)
                self.model.eval()
            begin = first_step if stage_index == first_stage else 0
            for step in range(begin, steps):
                if self.cancel.is_set():
                    raise Cancelled("training cancelled; the last saved state is kept for --resume")
                loss = (
                    self._bank_step(stage_index, step)
                    if stage == "bank"
                    else self._model_step(stage_index, stage, step)
                )
                global_step += 1
                event = TrainEvent(stage, global_step, self.total, loss, self._last_lr)
                if self.dist.is_main:
                    if r.run.eval_every and global_step % r.run.eval_every == 0 and self.val_set:
                        model = self.current_model()
                        event.metrics = evaluate_by_kind(model, self.val_set, r.data.chip_size)
                    self.events(event)
                if (step + 1) % r.run.checkpoint_every == 0 or step + 1 == steps:
                    stage_done = step + 1 == steps
                    self._save(
                        stage_index + 1 if stage_done else stage_index,
                        0 if stage_done else step + 1,
                    )
            if stage == "bank":
                for p in self.model.parameters():
                    p.requires_grad_(True)
                if self.model.config.freeze_text_encoder:
                    self.model.text_encoder.encoder.requires_grad_(False)
            first_step = 0
        return self._finish(time.monotonic() - start, global_step)

    def current_model(self) -> SaymapModel:
        return self.teacher if self.teacher is not None else self.model

    def _finish(self, seconds: float, steps: int) -> TrainResult:
        """Rank 0 scores the result, chooses the class bank and writes the model folder."""
        if not self.dist.is_main:
            barrier(self.dist)
            return TrainResult(self.out_dir / "model", {}, steps, seconds)
        final = self.current_model().eval()
        notes: list[str] = []
        metrics: dict[str, float] = {}
        if self.val_set is not None and len(self.val_set):
            metrics = evaluate_by_kind(final, self.val_set, self.recipe.data.chip_size)
            if self.banks.learned and self.recipe.wrel.class_bank:
                metrics, note = self.banks.choose_class_bank(final, metrics, self.val_set)
                notes.append(note)
        card = model_card(
            self.recipe,
            self.pools,
            steps=steps,
            metrics=metrics,
            seconds=seconds,
            device=str(self.device),
            notes=notes,
        )
        model_dir = save_model(final, self.out_dir / "model", card)
        if self.banks.learned:
            self.banks.save_class_bank(self.out_dir)
        barrier(self.dist)
        self.events(
            TrainEvent("done", steps, self.total, metrics=metrics, message=f"saved {model_dir}")
        )
        return TrainResult(model_dir, metrics, steps, seconds, notes)


def train(
    recipe: Recipe,
    out_dir: str | Path,
    train_set: SampleDataset,
    val_set: SampleDataset | None = None,
    *,
    events: EventSink | None = None,
    cancel: threading.Event | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train per the recipe into out_dir (state/ for resuming, model/ for the result)."""
    if len(train_set) == 0:
        raise DatasetError("the training set is empty")
    return Trainer(recipe, Path(out_dir), train_set, val_set, events, cancel).run(resume=resume)
