"""The training losses: SCanNet's, and SCanNet's plus Dice (the CBAM + Dice paper's option).

`ce` is SCanNet's objective (DingLei14/SCanNet `train_SCD_psd.py`, `utils/loss.py`):
    0.5 (CE_1 + CE_2) + weighted BCE(change) + change similarity,
with CE the cross-entropy of each date's semantic map on changed pixels only (class 0, "unchanged",
ignored); the weighted BCE averages positive and negative change pixels separately and weighs them
0.25 / 0.75; the similarity term is a cosine embedding loss (margin 0.1) between the two dates'
class probabilities (classes 1-6), pulling them together on unchanged pixels and apart on changed.

`ce_dice` adds Dice as Ratnayake et al. (arXiv 2505.04199, Buddhi19/Enhanced-SCanNet
`utils/loss.py`) define it, with weight 1: a multi-class Dice of each date's softmax against its
one-hot labels (pooled over the batch, smoothing 1) joins the semantic term, a binary Dice of the
sigmoid change map (per image, smoothing 1) the change term. SCanNet's pseudo-labels are not used.

A batch without changed pixels contributes 0 semantic cross-entropy rather than the 0/0 NaN of a
fully ignored mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "ce_dice")
POSITIVE_WEIGHT, NEGATIVE_WEIGHT = 0.25, 0.75
SIMILARITY_MARGIN = 0.1


def semantic_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the changed pixels (labels > 0)."""
    total = F.cross_entropy(logits, labels, ignore_index=0, reduction="sum")
    return total / (labels > 0).sum().clamp(min=1)


def weighted_bce(logits: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
    """SCanNet's `weighted_BCE_logits`: 0.25 x mean over changed pixels + 0.75 x mean over
    unchanged ones."""
    loss = F.binary_cross_entropy_with_logits(logits, changed, reduction="none")
    positive, negative = changed, 1 - changed
    return POSITIVE_WEIGHT * (loss * positive).sum() / (
        positive.sum() + 1e-12
    ) + NEGATIVE_WEIGHT * (loss * negative).sum() / (negative.sum() + 1e-12)


def change_similarity(
    logits_a: torch.Tensor, logits_b: torch.Tensor, changed: torch.Tensor
) -> torch.Tensor:
    """Cosine embedding loss between the dates' class-1..6 probabilities: +1 target unchanged, -1
    changed."""
    classes = logits_a.shape[1] - 1
    prob_a = F.softmax(logits_a[:, 1:], dim=1).permute(0, 2, 3, 1).reshape(-1, classes)
    prob_b = F.softmax(logits_b[:, 1:], dim=1).permute(0, 2, 3, 1).reshape(-1, classes)
    target = 1 - 2 * changed.reshape(-1)
    return F.cosine_embedding_loss(prob_a, prob_b, target, margin=SIMILARITY_MARGIN)


def multiclass_dice(
    logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1.0
) -> torch.Tensor:
    probabilities = F.softmax(logits, dim=1)
    one_hot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(probabilities.dtype)
    intersection = (probabilities * one_hot).sum(dim=(0, 2, 3))
    union = probabilities.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
    return 1 - ((2 * intersection + smooth) / (union + smooth)).mean()


def binary_dice(logits: torch.Tensor, changed: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    probabilities = torch.sigmoid(logits)
    intersection = (probabilities * changed).sum(dim=(2, 3))
    union = probabilities.sum(dim=(2, 3)) + changed.sum(dim=(2, 3))
    return 1 - ((2 * intersection + smooth) / (union + smooth)).mean()


def scd_loss(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], labels: torch.Tensor, loss: str = "ce"
) -> torch.Tensor:
    """`outputs` = (change logits (B, 1, H, W), date-1 and date-2 logits (B, 7, H, W)); labels
    (B, 2, H, W) long."""
    change, logits_a, logits_b = outputs
    labels_a, labels_b = labels[:, 0], labels[:, 1]
    changed = (labels_a > 0).unsqueeze(1).to(change.dtype)
    semantic = semantic_ce(logits_a, labels_a) + semantic_ce(logits_b, labels_b)
    binary = weighted_bce(change, changed)
    if loss == "ce_dice":
        semantic = (
            semantic + multiclass_dice(logits_a, labels_a) + multiclass_dice(logits_b, labels_b)
        )
        binary = binary + binary_dice(change, changed)
    elif loss != "ce":
        raise ValueError(f"loss {loss!r} is not one of {', '.join(LOSSES)}")
    return 0.5 * semantic + binary + change_similarity(logits_a, logits_b, changed)


@torch.no_grad()
def change_maps(outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(B, 2, H, W) predicted classes per date: each date's argmax where the change probability is
    over 0.5, 0 elsewhere, as SCanNet predicts."""
    change, logits_a, logits_b = outputs
    mask = (change[:, 0] > 0).long()
    return torch.stack([logits_a.argmax(1) * mask, logits_b.argmax(1) * mask], dim=1)
