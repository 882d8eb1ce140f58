"""One EuroSAT cell: the data and its split, the backbone for the mechanism's kind, training under
the budget, and the test metrics.

Images are normalised per channel with the training split's mean and standard deviation (the
authors normalise with ImageNet's statistics, which do not exist for 13 bands). Augmentation, when
on, is a random flip and right-angle rotation per image (the eight symmetries of a square); the
authors' code also rotates by any angle up to 90 degrees, jitters colour and blurs, which needs
torchvision and is left out.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.mechanism import MechanismSpec
from attnbench.suite import CellContext
from attnbench.suites.eurosat import data
from attnbench.suites.eurosat.metrics import classification_metrics, confusion
from attnbench.suites.eurosat.model import CNN, ViT, cnn_forward_flops, vit_forward_flops
from attnbench.suites.eurosat.task import EuroSATTask
from attnbench.toolkit.samplers import PairSampler
from attnbench.toolkit.training import (
    adamw,
    placed_mechanism_costs,
    train_under_budget,
    trained_outcome,
    warmup_cosine,
)
from attnbench.toolkit.vision import DihedralAugment, reported_values

EVAL_BATCH = 512


@dataclass(frozen=True)
class Splits:
    """Normalised float32 images (N, C, H, W) and labels per split, on the CPU."""

    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    mean: list[float]
    std: list[float]


def data_key(task: EuroSATTask) -> tuple:
    return (
        task.data,
        task.root,
        task.bands,
        task.split,
        task.split_ratios,
        task.split_seed,
        task.image_size,
        task.synthetic_per_class,
        task.data_seed,
    )


@functools.lru_cache(maxsize=2)
def load_splits(key: tuple) -> Splits:
    """A worker process runs several cells on the same data: decode, split and normalise it once."""
    source, root, bands, split, ratios, split_seed, size, per_class, data_seed = key
    if source == "synthetic":
        from attnbench.suites.eurosat.synthetic import generate

        arrays = {
            name: generate(count, size, data_seed, name)
            for name, count in zip(data.SPLITS, per_class)
        }
    else:
        loaded = data.load_images(root, bands)
        where = data.layout(root, bands)
        indices = (
            data.official_split(where, loaded.names)
            if split == "official"
            else data.random_split(len(loaded.labels), ratios, split_seed)
        )
        arrays = {
            name: (loaded.images[index], loaded.labels[index]) for name, index in indices.items()
        }
    train = arrays["train"][0]
    # One band at a time: all 13 bands of 18,900 images would be 8 GB in float64.
    mean, std = np.array(
        [
            [band.mean(dtype=np.float64), band.std(dtype=np.float64)]
            for band in train.transpose(1, 0, 2, 3)
        ]
    ).T
    scale = (
        torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1),
        torch.tensor(np.maximum(std, 1e-6), dtype=torch.float32).view(1, -1, 1, 1),
    )
    images = {
        name: (torch.from_numpy(x.astype(np.float32)) - scale[0]) / scale[1]
        for name, (x, _) in arrays.items()
    }
    labels = {name: torch.from_numpy(y) for name, (_, y) in arrays.items()}
    return Splits(images, labels, mean.tolist(), std.tolist())


def warm_restarts(
    steps_per_epoch: int, first_epochs: float, growth: float
) -> Callable[[int, int | None], float]:
    """SGDR's cosine annealing with warm restarts (PyTorch's CosineAnnealingWarmRestarts, T_0 and
    T_mult in epochs, eta_min 0) as an LR multiplier, updated every step."""

    def multiplier(step: int, planned: int | None) -> float:
        position, length = step / steps_per_epoch, first_epochs
        while position >= length:
            position, length = position - length, length * growth
        return 0.5 * (1.0 + math.cos(math.pi * position / length))

    return multiplier


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, device: torch.device) -> np.ndarray:
    model.eval()
    return torch.cat(
        [model(chunk.to(device)).argmax(-1).cpu() for chunk in images.split(EVAL_BATCH)]
    ).numpy()


def train_and_evaluate(
    task: EuroSATTask,
    mechanism: MechanismSpec,
    hparams: dict[str, Any],
    budget: Budget,
    seed: int,
    ctx: CellContext,
) -> CellOutcome:
    data.require_vision()
    device = torch.device(ctx.device)
    splits = load_splits(data_key(task))
    train_x, train_y = splits.images["train"].to(device), splits.labels["train"].to(device)
    if task.backbone == "cnn":
        config, backbone, count_flops = task.cnn_config(), CNN, cnn_forward_flops
    else:
        config, backbone, count_flops = task.vit_config(), ViT, vit_forward_flops
    step_flops = 3 * count_flops(config, mechanism, hparams, task.batch_size)["total"]
    torch.manual_seed(seed)
    model = backbone(config, mechanism, hparams).to(device)
    optimizer = adamw(model, task.learning_rate, task.weight_decay)
    sampler = PairSampler(train_x, train_y, task.batch_size, seed)
    augment = DihedralAugment(seed) if task.augment else None

    def next_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = sampler(step)
        return (augment(images) if augment else images), labels

    weights = torch.tensor(task.class_weights, device=device) if task.class_weights else None
    schedule = (
        warmup_cosine
        if task.schedule == "cosine"
        else warm_restarts(sampler.per_epoch, task.restart_epochs, task.restart_growth)
    )
    result = train_under_budget(
        model,
        next_batch,
        lambda logits, y: F.cross_entropy(logits, y, weight=weights),
        optimizer,
        budget,
        flops_per_step=step_flops,
        tokens_per_step=task.batch_size,
        on_step=ctx.on_step,
        lr_multiplier=schedule,
    )
    test_y = splits.labels["test"].numpy()
    predictions = predict(model, splits.images["test"], device)
    metrics = classification_metrics(test_y, predictions, data.CLASSES)
    if len(splits.labels["val"]):
        metrics["val_accuracy"] = classification_metrics(
            splits.labels["val"].numpy(), predict(model, splits.images["val"], device), data.CLASSES
        )["accuracy"]
    metrics.update(reported_values(model))
    per_image = count_flops(config, mechanism, hparams, batch=1)
    return trained_outcome(
        result,
        model,
        metrics,
        placed_mechanism_costs(per_image),
        {
            "epochs": result.meter.steps * task.batch_size / len(train_y),
            "split_sizes": {name: len(labels) for name, labels in splits.labels.items()},
            "normalisation": {"mean": splits.mean, "std": splits.std},
            "classes": list(data.CLASSES),
            "confusion_matrix": confusion(test_y, predictions, len(data.CLASSES)).tolist(),
            "flops_per_step": step_flops,
            "forward_flops_per_image": per_image,
            "mechanism_placements": [name for name, _ in model.mechanisms()],
            "mechanism_hparams": hparams,
        },
    )
