"""One SECOND cell: the pairs of both splits, the network, training under the budget, the official
scores on the evaluation split (`val`, as in SCanNet's and Bi-SRNet's papers).

Pixels stay uint8 in memory (the real training split is 4.7 GB as bytes, four times that as floats)
and are normalised per date as each batch is drawn: with SCanNet's per-date means and standard
deviations for the real data, or with the training split's own per date for synthetic data.
Augmentation, when on, applies one random flip and right-angle rotation to both images and both
labels of a pair together, as SCanNet's `rand_rot90_flip_SCD` does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.extras import require_vision
from attnbench.mechanism import MechanismSpec
from attnbench.suite import CellContext
from attnbench.suites.second import data
from attnbench.suites.second.losses import change_maps, scd_loss
from attnbench.suites.second.metrics import histogram, scd_scores
from attnbench.suites.second.model import SCDNet, scd_forward_flops
from attnbench.suites.second.task import SecondTask
from attnbench.toolkit.samplers import PairSampler
from attnbench.toolkit.training import (
    adamw,
    placed_mechanism_costs,
    train_under_budget,
    trained_outcome,
    warmup_cosine,
)
from attnbench.toolkit.vision import DihedralAugment, reported_values

EVAL_BATCH = 16


@dataclass(frozen=True)
class Splits:
    """uint8 pairs per split, images (N, 2, 3, H, W) and labels (N, 2, H, W), and the per-date
    statistics."""

    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    mean: list[list[float]]  # [date][channel], 0-255 scale
    std: list[list[float]]


def data_key(task: SecondTask) -> tuple:
    return (
        task.data,
        task.root,
        task.layout,
        task.labels,
        task.normalisation,
        task.image_size,
        task.synthetic_pairs,
        task.data_seed,
    )


@functools.lru_cache(maxsize=2)
def load_splits(key: tuple) -> Splits:
    """A worker process runs several cells on the same data: decode it once."""
    source, root, layout, labels, normalisation, size, pairs, seed = key
    if source == "synthetic":
        from attnbench.suites.second.synthetic import generate

        arrays = {
            split: generate(count, size, seed, split) for split, count in zip(data.SPLITS, pairs)
        }
    else:
        loaded = {split: data.load_split(root, layout, split, labels) for split in data.SPLITS}
        arrays = {split: (pair_set.images, pair_set.labels) for split, pair_set in loaded.items()}
    if normalisation == "official":
        mean = [list(data.OFFICIAL_NORMALISATION[date][0]) for date in data.IMAGE_DIRS]
        std = [list(data.OFFICIAL_NORMALISATION[date][1]) for date in data.IMAGE_DIRS]
    else:
        train = arrays["train"][0]
        mean = [
            [float(train[:, date, channel].mean(dtype=np.float64)) for channel in range(3)]
            for date in (0, 1)
        ]
        std = [
            [
                max(float(train[:, date, channel].std(dtype=np.float64)), 1e-6)
                for channel in range(3)
            ]
            for date in (0, 1)
        ]
    return Splits(
        {split: torch.from_numpy(x) for split, (x, _) in arrays.items()},
        {split: torch.from_numpy(y) for split, (_, y) in arrays.items()},
        mean,
        std,
    )


class Normalise:
    """uint8 pairs (B, 2, 3, H, W) -> float32, each date with its own mean and standard
    deviation."""

    def __init__(self, splits: Splits, device: torch.device) -> None:
        self.mean = torch.tensor(splits.mean, dtype=torch.float32, device=device).view(
            1, 2, 3, 1, 1
        )
        self.std = torch.tensor(splits.std, dtype=torch.float32, device=device).view(1, 2, 3, 1, 1)

    def __call__(self, pairs: torch.Tensor) -> torch.Tensor:
        return (pairs.to(self.mean.device, torch.float32) - self.mean) / self.std


class PairAugment:
    """One of the square's eight symmetries per pair, the same for both images and both labels."""

    def __init__(self, seed: int) -> None:
        self.dihedral = DihedralAugment(seed)

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, channels, height, width = images.shape
        stacked = torch.cat(
            [images.reshape(batch, 2 * channels, height, width), labels.to(images.dtype)], dim=1
        )
        moved = self.dihedral(stacked)
        return (
            moved[:, : 2 * channels].reshape(images.shape),
            moved[:, 2 * channels :].round().to(labels.dtype),
        )


def poly(power: float):
    """SCanNet's `adjust_lr`: the learning rate times (1 - progress) ** power."""

    def multiplier(step: int, planned: int | None) -> float:
        return 1.0 if not planned else max(0.0, 1.0 - step / planned) ** power

    return multiplier


def optimizer_for(task: SecondTask, model: torch.nn.Module) -> torch.optim.Optimizer:
    if task.optimizer == "sgd":  # SCanNet's
        return torch.optim.SGD(
            model.parameters(),
            lr=task.learning_rate,
            momentum=0.9,
            nesterov=True,
            weight_decay=task.weight_decay,
        )
    return adamw(model, task.learning_rate, task.weight_decay)


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, normalise: Normalise) -> np.ndarray:
    """(N, 2, H, W) predicted classes of every pair."""
    model.eval()
    return torch.cat(
        [change_maps(model(normalise(chunk))).cpu() for chunk in images.split(EVAL_BATCH)]
    ).numpy()


def score(predictions: np.ndarray, labels: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """The official scores over both dates (first dates' maps, then second dates', as Eval_SCD.py
    lists them)."""
    preds = np.concatenate([predictions[:, 0], predictions[:, 1]])
    truth = np.concatenate([labels[:, 0], labels[:, 1]])
    return scd_scores(preds, truth), histogram(preds, truth)[0]


def train_and_evaluate(
    task: SecondTask,
    mechanism: MechanismSpec,
    hparams: dict[str, Any],
    budget: Budget,
    seed: int,
    ctx: CellContext,
) -> CellOutcome:
    if task.data != "synthetic":
        require_vision("SECOND", ("PIL",))
    device = torch.device(ctx.device)
    splits = load_splits(data_key(task))
    normalise = Normalise(splits, device)
    config = task.network()
    step_flops = 3 * scd_forward_flops(config, mechanism, hparams, task.batch_size)["total"]
    torch.manual_seed(seed)
    model = SCDNet(config, mechanism, hparams).to(device)
    optimizer = optimizer_for(task, model)
    train_images, train_labels = splits.images["train"], splits.labels["train"]
    sampler = PairSampler(train_images, train_labels, task.batch_size, seed)
    augment = PairAugment(seed) if task.augment else None

    def next_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = sampler(step)
        images, labels = normalise(images), labels.to(device, torch.long)
        return augment(images, labels) if augment else (images, labels)

    schedule = warmup_cosine if task.schedule == "cosine" else poly(task.poly_power)
    result = train_under_budget(
        model,
        next_batch,
        lambda outputs, labels: scd_loss(outputs, labels, task.loss),
        optimizer,
        budget,
        flops_per_step=step_flops,
        tokens_per_step=task.batch_size,
        on_step=ctx.on_step,
        lr_multiplier=schedule,
    )
    val_labels = splits.labels["val"].numpy()
    predictions = predict(model, splits.images["val"], normalise)
    metrics, hist = score(predictions, val_labels)
    metrics.update(reported_values(model))
    per_pair = scd_forward_flops(config, mechanism, hparams, batch=1)  # one pair: both dates
    return trained_outcome(
        result,
        model,
        metrics,
        placed_mechanism_costs(per_pair),
        {
            "epochs": result.meter.steps * task.batch_size / len(train_labels),
            "split_sizes": {name: len(labels) for name, labels in splits.labels.items()},
            "evaluated_on": "val",
            "loss": task.loss,
            "normalisation": {"kind": task.normalisation, "mean": splits.mean, "std": splits.std},
            "classes": list(data.CLASSES),
            "histogram_pred_by_label": hist.tolist(),
            "changed_fraction_val": float((val_labels[:, 0] > 0).mean()),
            "flops_per_step": step_flops,
            "forward_flops_per_pair": per_pair,
            "mechanism_placements": [name for name, _ in model.mechanisms()],
            "mechanism_hparams": hparams,
        },
    )
