"""One MQAR cell: data, the learning-rate sweep under the budget, and evaluation."""
from __future__ import annotations

from typing import Any

import torch

from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.lm import IGNORE_INDEX, LMConfig, MixerLM, forward_flops, layer_costs, lm_loss, training_step_flops
from attnbench.mechanism import MechanismSpec
from attnbench.suite import CellContext
from attnbench.suites.mqar.data import multiquery_ar
from attnbench.suites.mqar.metrics import accuracy
from attnbench.suites.mqar.suite import TEST_SEED_OFFSET, MQARTask
from attnbench.training import adamw, train_under_budget


class EpochSampler:
    """Full batches in a fresh seeded order each epoch; the last partial batch is dropped so every
    step costs the same FLOPs."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int) -> None:
        if batch_size > len(inputs):
            raise ValueError(f"batch_size {batch_size} exceeds the {len(inputs)} training examples")
        self.inputs, self.labels, self.batch_size = inputs, labels, batch_size
        self.per_epoch = len(inputs) // batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        position = step % self.per_epoch
        if position == 0:
            self.order = torch.randperm(len(self.inputs), generator=self.generator).to(self.inputs.device)
        index = self.order[position * self.batch_size:(position + 1) * self.batch_size]
        return self.inputs[index], self.labels[index]


@torch.no_grad()
def predict(model: MixerLM, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    return torch.cat([model(chunk).argmax(-1) for chunk in inputs.split(batch_size)])


def make_data(task: MQARTask, seed: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    common = dict(vocab_size=task.vocab_size, input_seq_len=task.seq_len, power_a=task.power_a,
                  num_kv_pairs=task.num_kv_pairs, random_non_queries=task.random_non_queries)
    train = multiquery_ar(num_examples=task.num_train, seed=seed, **common)
    test = multiquery_ar(num_examples=task.num_test, seed=TEST_SEED_OFFSET + seed, **common)
    return tuple(t.to(device) for t in (*train, *test))


def train_and_evaluate(task: MQARTask, mechanism: MechanismSpec, hparams: dict[str, Any], budget: Budget,
                       seed: int, ctx: CellContext) -> CellOutcome:
    device = torch.device(ctx.device)
    train_x, train_y, test_x, test_y = make_data(task, seed, device)
    config = LMConfig(task.vocab_size, task.seq_len, task.d_model, task.n_layers, task.mlp)
    step_flops = training_step_flops(config, mechanism, hparams, task.batch_size)
    trials = []
    for index, lr in enumerate(task.learning_rates):
        torch.manual_seed(seed)  # every learning rate starts from the same weights
        model = MixerLM(config, mechanism, hparams).to(device)
        optimizer = adamw(model, lr, task.weight_decay)
        result = train_under_budget(
            model, EpochSampler(train_x, train_y, task.batch_size, seed), lm_loss, optimizer, budget,
            flops_per_step=step_flops, tokens_per_step=task.batch_size * task.seq_len,
            on_step=lambda step, planned, index=index: ctx.on_step(
                index * (planned or 0) + step, planned and planned * len(task.learning_rates)),
        )
        score = accuracy(predict(model, test_x, task.batch_size), test_y, ignore_index=IGNORE_INDEX)
        trials.append({"lr": lr, "accuracy": score, "final_loss": result.final_loss, "meter": result.meter,
                       "params": sum(p.numel() for p in model.parameters())})
    best = max(trials, key=lambda t: t["accuracy"])
    metrics = {"accuracy": best["accuracy"], "final_train_loss": best["final_loss"]}
    metrics.update({f"accuracy@lr={t['lr']:.3g}": t["accuracy"] for t in trials})
    return CellOutcome(
        metrics=metrics,
        costs=layer_costs(mechanism, hparams, task.seq_len, task.d_model),
        budget_used=best["meter"].used(),
        flops=best["meter"].flops,
        steps=best["meter"].steps,
        params=best["params"],
        details={
            "best_lr": best["lr"],
            "used": best["meter"].as_dict(),
            "trials": [{"lr": t["lr"], "accuracy": t["accuracy"], "steps": t["meter"].steps} for t in trials],
            "train_flops_all_trials": sum(t["meter"].flops for t in trials),
            "forward_flops_per_batch": forward_flops(config, mechanism, hparams, task.batch_size),
            "flops_per_step": step_flops,
            "mechanism_hparams": hparams,
        },
    )
