"""LRB-WREL's learned reference banks: stage 2 fits them with the model frozen, stage 3 routes
weak samples through their entry, and the end of the run keeps the class-level bank only
where it measures better ("Understanding What Is Not Said", 2025)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from saymap.engine.model import SaymapModel
from saymap.engine.model.outputs import TextFeatures
from saymap.engine.model.reference_bank import ReferenceBank, attach_class_bank
from saymap.training.batching import autocast, banked_text, to_tensors
from saymap.training.distributed import DistInfo, average_gradients
from saymap.training.evaluate import evaluate_by_kind
from saymap.training.losses import segmentation_loss
from saymap.training.recipe import Recipe
from saymap.training.samples import SampleDataset
from saymap.training.wrel import Pools

CLASS_BANK_FILE = "class_bank.safetensors"
WEAK_MIOU = "weak/mIoU"  # what decides whether the class-level bank stays


class BankStage:
    """One bank entry per weak sample and one per class name, with their own optimizer."""

    def __init__(
        self, recipe: Recipe, pools: Pools, model: SaymapModel, device: torch.device
    ) -> None:
        self.recipe, self.pools, self.device = recipe, pools, device
        dim, tokens = model.config.text_hidden_size, model.config.max_tokens
        # Only LRB-WREL uses the banks; one entry per weak sample is 600 MB on the synthetic
        # set, held and checkpointed for nothing by the other methods.
        banked = recipe.wrel.method == "lrb-wrel"
        n_samples = max(1, len(pools.weak)) if banked else 1
        n_classes = max(1, len(pools.classes)) if banked else 1
        self.sample_bank = ReferenceBank(n_samples, tokens, dim).to(device)
        self.class_bank = ReferenceBank(n_classes, tokens, dim).to(device)
        self.optimizer = torch.optim.Adam(
            [*self.sample_bank.parameters(), *self.class_bank.parameters()], lr=recipe.wrel.bank_lr
        )

    @property
    def entries(self) -> dict[str, torch.nn.Parameter]:
        """The banks by the names the saved state uses."""
        return {"sample": self.sample_bank.entries, "class": self.class_bank.entries}

    @property
    def learned(self) -> bool:
        """Whether this run fits banks at all (LRB-WREL with weak samples)."""
        return self.recipe.wrel.method == "lrb-wrel" and bool(self.pools.weak)

    def step(
        self,
        model: SaymapModel,
        train_set: SampleDataset,
        weak: list[int],
        dist: DistInfo,
    ) -> float:
        """One stage-2 step on the weak samples at positions `weak` of pools.weak; only the
        banks move (the caller has frozen the model)."""
        samples = [train_set[self.pools.weak[j]] for j in weak]
        pixels, masks = to_tensors(samples, self.recipe.data.chip_size, self.device)
        names = [s.expression for s in samples]
        self.optimizer.zero_grad(set_to_none=True)
        sample_idx = torch.tensor(weak, device=self.device)
        class_idx = torch.tensor([self.pools.weak_class[j] for j in weak], device=self.device)
        loss = torch.zeros((), device=self.device)
        banks = [(self.sample_bank, sample_idx)]
        if self.recipe.wrel.class_bank:
            banks.append((self.class_bank, class_idx))
        for bank, index in banks:
            with autocast(self.device):
                out = model(pixels, banked_text(model, names, bank, index))
            loss = loss + segmentation_loss(out, masks, self.recipe.loss)
        loss.backward()
        average_gradients([self.sample_bank.entries, self.class_bank.entries], dist)
        self.optimizer.step()
        return loss.item()

    def route_weak(
        self,
        model: SaymapModel,
        text: TextFeatures,
        names: list[str],
        weak_rows: list[int],
        weak_positions: list[int],
    ) -> TextFeatures:
        """Stage 3: the batch's text with each weak row (its class name, at `weak_positions`
        of pools.weak) replaced by the name through its learned bank entry."""
        with torch.no_grad():
            banked = banked_text(
                model,
                names,
                self.sample_bank,
                torch.tensor(weak_positions, device=self.device),
            )
        rows = torch.tensor(weak_rows, device=self.device)
        return TextFeatures(
            text.embeddings.index_copy(0, rows, banked.embeddings.to(text.embeddings.dtype)),
            text.mask.index_copy(0, rows, banked.mask.to(text.mask.dtype)),
        )

    def choose_class_bank(
        self, model: SaymapModel, metrics: dict[str, float], val_set: SampleDataset
    ) -> tuple[dict[str, float], str]:
        """Keep the class-level bank only if class-name prompts measure better with it."""
        attach_class_bank(model, self.pools.classes, self.class_bank.entries.detach())
        with_bank = evaluate_by_kind(model, val_set, self.recipe.data.chip_size)
        before, after = metrics.get(WEAK_MIOU, 0.0), with_bank.get(WEAK_MIOU, 0.0)
        if with_bank.get(WEAK_MIOU, -1.0) > metrics.get(WEAK_MIOU, -1.0):
            return with_bank, f"class-level bank kept: weak mIoU {before:.4f} -> {after:.4f}"
        attach_class_bank(model, [], None)
        return metrics, f"class-level bank dropped: weak mIoU {before:.4f}, {after:.4f} with it"

    def save_class_bank(self, out_dir: Path) -> None:
        """Kept beside the model whether or not it was attached, so both can be compared."""
        save_file(
            {"entries": self.class_bank.entries.detach().cpu().contiguous()},
            str(out_dir / CLASS_BANK_FILE),
            metadata={"classes": json.dumps(self.pools.classes)},
        )
