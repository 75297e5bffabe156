"""The Lovász hinge: zero on a confident right answer, and it ranks errors as IoU does."""

from __future__ import annotations

import pytest
import torch

from saymap.engine.model.outputs import SegmentationOutput
from saymap.training.losses import lovasz_hinge, segmentation_loss
from saymap.training.recipe import LossSection, RecipeError, recipe_from_dict


def _road(width: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 16 - width // 2 : 16 - width // 2 + width, :] = 1
    return mask


def test_a_confident_right_answer_costs_nothing_and_a_wrong_one_costs_more() -> None:
    mask = _road(4)
    right = (2 * mask - 1) * 3.0
    assert lovasz_hinge(right, mask).item() == pytest.approx(0.0)
    assert lovasz_hinge(-right, mask).item() > lovasz_hinge(torch.zeros_like(mask), mask).item()


def test_missing_a_thin_road_costs_more_than_as_many_pixels_of_a_wide_one() -> None:
    """IoU counts a miss against the object's own size: 64 pixels missed of a 2-pixel road
    is half of it, of an 8-pixel road an eighth. Dice-free cross-entropy would not tell."""
    thin, wide = _road(2), _road(8)
    miss_thin = (2 * thin - 1) * 3.0
    miss_thin[..., 15, :] = -3.0  # one of its two rows
    miss_wide = (2 * wide - 1) * 3.0
    miss_wide[..., 12, :] = -3.0  # one of its eight rows
    assert lovasz_hinge(miss_thin, thin).item() > 2 * lovasz_hinge(miss_wide, wide).item()


def test_a_batch_costs_the_mean_of_its_images_each_on_its_own() -> None:
    """The batch is sorted in one call: no image's pixels may rank among another's. An
    empty mask (a chip without the class) is in the batch too."""
    torch.manual_seed(0)
    masks = torch.cat([_road(2), _road(8), torch.zeros(1, 1, 32, 32)])
    logits = torch.randn(3, 1, 32, 32) * 2
    alone = torch.stack([lovasz_hinge(logits[i : i + 1], masks[i : i + 1]) for i in range(3)])
    assert len(set(alone.tolist())) == 3
    assert lovasz_hinge(logits, masks).item() == pytest.approx(alone.mean().item(), rel=1e-6)


def test_gradient_flows_and_the_term_is_off_by_default() -> None:
    mask = _road(4)
    logits = torch.zeros_like(mask, requires_grad=True)
    output = SegmentationOutput(logits, logits, None)
    base = segmentation_loss(output, mask, LossSection())
    with_lovasz = segmentation_loss(output, mask, LossSection(lovasz_weight=1.0))
    with_lovasz.backward()
    assert logits.grad is not None and logits.grad[mask.bool()].lt(0).all()
    assert with_lovasz.item() == pytest.approx(base.item() + lovasz_hinge(logits, mask).item())


def test_a_negative_loss_weight_is_refused() -> None:
    with pytest.raises(RecipeError, match="lovasz_weight"):
        recipe_from_dict({"loss": {"lovasz_weight": -1.0}})
