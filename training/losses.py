"""Training objectives: weighted cross-entropy + Dice on the target, the inverted mask on
the background head (BTDNet's twin decoder), and optionally the Lovász hinge, a surrogate
of IoU itself that counts every missed pixel of a thin object (a road) as IoU does."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from saymap.engine.model.outputs import SegmentationOutput
from saymap.training.recipe import LossSection


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, fg: float, bg: float) -> torch.Tensor:
    """LAVT's two-class weighted cross-entropy, written for a single logit."""
    weight = target * fg + (1 - target) * bg
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    prob = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    inter = (prob * target).sum(1)
    return (1 - (2 * inter + eps) / (prob.sum(1) + target.sum(1) + eps)).mean()


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image Lovász hinge (Berman et al., CVPR 2018): the hinge errors sorted, weighted by
    the gradient of the Jaccard loss's Lovász extension; mean over the images. One sort for
    the whole batch (each image's pixels along its own row)."""
    logits, target = logits.flatten(1), target.flatten(1)
    errors = 1 - logits * (2 * target - 1)
    errors, order = torch.sort(errors, dim=1, descending=True)
    gt = target.gather(1, order)
    positives = gt.sum(1, keepdim=True)
    intersection = positives - gt.cumsum(1)
    union = positives + (1 - gt).cumsum(1)
    jaccard = 1 - intersection / union
    jaccard = torch.cat((jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]), dim=1)
    return (F.relu(errors) * jaccard).sum(1).mean()


def segmentation_loss(
    output: SegmentationOutput, mask: torch.Tensor, weights: LossSection
) -> torch.Tensor:
    """mask: (N, 1, H, W) float {0, 1} at the input resolution."""
    logits = output.logits.float()
    loss = weighted_bce(logits, mask, weights.foreground_weight, weights.background_weight)
    loss = loss + weights.dice_weight * dice_loss(logits, mask)
    if weights.lovasz_weight > 0:
        loss = loss + weights.lovasz_weight * lovasz_hinge(logits, mask)
    if output.background_logits is not None:
        small = F.interpolate(mask, size=output.target_logits.shape[-2:], mode="area")
        target_head = output.target_logits.float()
        background_head = output.background_logits.float()
        aux = weighted_bce(target_head, small, weights.foreground_weight, weights.background_weight)
        aux = aux + F.binary_cross_entropy_with_logits(background_head, 1 - small)
        aux = aux + dice_loss(target_head, small) + dice_loss(background_head, 1 - small)
        loss = loss + weights.background_head_weight * aux
    return loss
