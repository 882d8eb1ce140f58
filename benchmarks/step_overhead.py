"""The harness's per-step overhead: `train_under_budget` against a bare PyTorch loop, same model.

    python benchmarks/step_overhead.py [--steps 300] [--rounds 5] [--mechanism mha]

Both loops train the MQAR smoke model (AdamW, the same batches) for the same number of steps;
rounds alternate A/B so that machine drift hits both. Prints per-step times and the ratio
harness / bare (the goal is under 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from attnbench.budget import Budget
from attnbench.registry import MECHANISMS
from attnbench.suites.mqar.task import SMOKE_TASKS
from attnbench.suites.mqar.train import EpochSampler, make_data
from attnbench.toolkit.lm import LMConfig, MixerLM, lm_loss, training_step_flops
from attnbench.toolkit.training import adamw, train_under_budget


def setup(mechanism: str):
    task = SMOKE_TASKS[0]
    spec = MECHANISMS.get(mechanism)
    hparams = spec.hparams("smoke", {"num_heads": 1})
    train_x, train_y, _, _ = make_data(task, 0, torch.device("cpu"))
    config = LMConfig(task.vocab_size, task.seq_len, task.d_model, task.n_layers, task.mlp)
    torch.manual_seed(0)
    model = MixerLM(config, spec, hparams)
    optimizer = adamw(model, task.learning_rates[0], task.weight_decay)
    sampler = EpochSampler(train_x, train_y, task.batch_size, 0)
    return (
        task,
        model,
        optimizer,
        sampler,
        training_step_flops(config, spec, hparams, task.batch_size),
    )


def bare_loop(model, optimizer, sampler, steps: int) -> float:
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        inputs, targets = sampler(step)
        loss = lm_loss(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps


def harness_loop(model, optimizer, sampler, steps: int, step_flops: int, tokens: int) -> float:
    started = time.perf_counter()
    train_under_budget(
        model, sampler, lm_loss, optimizer, Budget("steps", steps), step_flops, tokens
    )
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mechanism", default="mha")
    args = parser.parse_args()
    task, model, optimizer, sampler, step_flops = setup(args.mechanism)
    tokens = task.batch_size * task.seq_len
    bare_loop(model, optimizer, sampler, 20)  # warm-up
    bare, harness = [], []
    for _ in range(args.rounds):
        bare.append(bare_loop(model, optimizer, sampler, args.steps))
        harness.append(harness_loop(model, optimizer, sampler, args.steps, step_flops, tokens))
    b, h = statistics.median(bare), statistics.median(harness)
    print(
        f"model: MQAR smoke ({task.label}), mechanism {args.mechanism}, {torch.get_num_threads()}"
        " threads"
    )
    print(
        f"bare loop     median {b * 1000:.3f} ms/step  (rounds:"
        f" {', '.join(f'{x * 1000:.3f}' for x in bare)})"
    )
    print(
        f"harness loop  median {h * 1000:.3f} ms/step  (rounds:"
        f" {', '.join(f'{x * 1000:.3f}' for x in harness)})"
    )
    print(f"ratio harness/bare: {h / b:.4f}")


if __name__ == "__main__":
    main()
