"""Training batches under a budget: every step a full batch, so that every step costs what the
budget counts.

Each epoch reshuffles the examples with the cell's seed (one `torch.randperm` per epoch, so a cell's
batches are the same wherever it runs) and leaves out the last partial batch.
"""

from __future__ import annotations

import torch


class EpochSampler:
    """Batches of example indices: `examples` is the index tensor to draw from (all of a split, or
    the usable part of it). A batch larger than the examples is an error unless `partial_ok`, which
    yields them all.
    """

    def __init__(
        self, examples: torch.Tensor, batch_size: int, seed: int, partial_ok: bool = False
    ) -> None:
        if batch_size > len(examples) and not partial_ok:
            raise ValueError(
                f"batch_size {batch_size} exceeds the {len(examples)} training examples"
            )
        self.examples, self.batch_size = examples, batch_size
        self.per_epoch = max(1, len(examples) // batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.order = examples

    def __call__(self, step: int) -> torch.Tensor:
        position = step % self.per_epoch
        if position == 0:
            self.order = self.examples[torch.randperm(len(self.examples), generator=self.generator)]
        return self.order[position * self.batch_size : (position + 1) * self.batch_size]


class PairSampler:
    """Batches of (inputs, labels) rows drawn by an `EpochSampler` over all of them."""

    def __init__(
        self, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int
    ) -> None:
        self.inputs, self.labels = inputs, labels
        self.indices = EpochSampler(torch.arange(len(inputs)), batch_size, seed)
        self.per_epoch = (
            self.indices.per_epoch
        )  # steps in an epoch, for schedules counted in epochs

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.indices(step).to(self.inputs.device)
        return self.inputs[index], self.labels[index]
