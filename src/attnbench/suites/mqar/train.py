"""One MQAR cell: data, the learning-rate sweep under the budget, and evaluation."""

from __future__ import annotations

from typing import Any

import torch

from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.mechanism import MechanismSpec
from attnbench.suite import CellContext
from attnbench.suites.mqar.data import multiquery_ar
from attnbench.suites.mqar.metrics import accuracy
from attnbench.suites.mqar.task import TEST_SEED_OFFSET, MQARTask
from attnbench.toolkit.lm import (
    IGNORE_INDEX,
    LMConfig,
    MixerLM,
    forward_flops,
    layer_costs,
    lm_loss,
    training_step_flops,
)
from attnbench.toolkit.samplers import PairSampler
from attnbench.toolkit.training import adamw, train_under_budget


@torch.no_grad()
def predict(model: MixerLM, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    return torch.cat([model(chunk).argmax(-1) for chunk in inputs.split(batch_size)])


def make_data(task: MQARTask, seed: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    common = dict(
        vocab_size=task.vocab_size,
        input_seq_len=task.seq_len,
        power_a=task.power_a,
        num_kv_pairs=task.num_kv_pairs,
        random_non_queries=task.random_non_queries,
    )
    train = multiquery_ar(num_examples=task.num_train, seed=seed, **common)
    test = multiquery_ar(num_examples=task.num_test, seed=TEST_SEED_OFFSET + seed, **common)
    return tuple(t.to(device) for t in (*train, *test))


def train_and_evaluate(
    task: MQARTask,
    mechanism: MechanismSpec,
    hparams: dict[str, Any],
    budget: Budget,
    seed: int,
    ctx: CellContext,
) -> CellOutcome:
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
            model,
            PairSampler(train_x, train_y, task.batch_size, seed),
            lm_loss,
            optimizer,
            budget,
            flops_per_step=step_flops,
            tokens_per_step=task.batch_size * task.seq_len,
            on_step=lambda step, planned, index=index: ctx.on_step(
                index * (planned or 0) + step, planned and planned * len(task.learning_rates)
            ),
        )
        score = accuracy(predict(model, test_x, task.batch_size), test_y, ignore_index=IGNORE_INDEX)
        trials.append(
            {
                "lr": lr,
                "accuracy": score,
                "final_loss": result.final_loss,
                "meter": result.meter,
                "params": sum(p.numel() for p in model.parameters()),
            }
        )
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
            "trials": [
                {"lr": t["lr"], "accuracy": t["accuracy"], "steps": t["meter"].steps}
                for t in trials
            ],
            "train_flops_all_trials": sum(t["meter"].flops for t in trials),
            "forward_flops_per_batch": forward_flops(config, mechanism, hparams, task.batch_size),
            "flops_per_step": step_flops,
            "mechanism_hparams": hparams,
        },
    )
