"""From-scratch mode: train a small word-level LM on passkey retrieval under the budget, then read
needles back greedily over a (context length x depth) grid, lengths beyond training included.

Training examples are RULER NIAH examples at the training length with needles at random depths; the
loss is on the answer only (the value and its full stop). The backbone has no position embeddings
and a short causal convolution per block (`attnbench.toolkit.lm`), so nothing but the mechanism
decides whether retrieval survives longer contexts. Every batch is padded to the training length, so
every step costs the same FLOPs.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import torch

from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.mechanism import MechanismSpec
from attnbench.metric_names import grid_metric as metric_name
from attnbench.suite import CellContext
from attnbench.suites.needle.data import NeedleRecord, generate
from attnbench.suites.needle.metrics import postprocess_pred, string_match_all
from attnbench.suites.needle.task import ANSWER_TOKENS, NeedleTask
from attnbench.suites.needle.tokenizer import WordTokenizer, default_tokenizer
from attnbench.toolkit.lm import (
    IGNORE_INDEX,
    LMConfig,
    MixerLM,
    forward_flops,
    layer_costs,
    lm_loss,
    training_step_flops,
)
from attnbench.toolkit.training import adamw, train_under_budget, trained_outcome

LENGTH_GROUPS = 4  # lengths drawn per training batch
EVAL_SEED_OFFSET = 2**31  # evaluation examples never share a seed with training batches


def model_config(task: NeedleTask, vocab_size: int) -> LMConfig:
    return LMConfig(
        vocab_size,
        task.train_length,
        task.d_model,
        task.n_layers,
        mlp=task.mlp,
        positions="none",
        short_conv=task.short_conv,
    )


def answer_text(record: NeedleRecord) -> str:
    return " " + ", ".join(record.outputs) + "."


def shortest_length(task: NeedleTask, tokenizer: WordTokenizer) -> int:
    """Tokens of the task's prompt with no haystack, plus the answer: the shortest example there
    is."""
    record = generate(
        task.niah_task,
        count_tokens=tokenizer,
        max_seq_length=task.train_length,
        num_samples=1,
        seed=0,
        tokens_to_generate=ANSWER_TOKENS,
    )[0]
    return (
        len(tokenizer.encode(record.input + record.answer_prefix))
        - _haystack_tokens(record, tokenizer)
        + ANSWER_TOKENS
    )


def _haystack_tokens(record: NeedleRecord, tokenizer: WordTokenizer) -> int:
    from attnbench.suites.needle.data import NOISE

    return record.input.count(NOISE) * len(tokenizer.encode(NOISE))


def training_batch(
    task: NeedleTask, tokenizer: WordTokenizer, seed: int, shortest: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of shape (batch, train_length - 1); labels are set on the answer tokens
    only.

    The batch comes in `LENGTH_GROUPS` groups, each sized to a length drawn uniformly between the
    shortest example and the training length, and is padded to the training length: a model that
    only ever saw one length learns that length, not retrieval, and padding keeps every step's FLOPs
    equal.
    """
    rng = random.Random(seed)
    low = min(shortest or task.train_length, task.train_length)
    sizes = [
        len(part)
        for part in torch.arange(task.batch_size).tensor_split(min(LENGTH_GROUPS, task.batch_size))
    ]
    records = []
    for size in sizes:
        records += generate(
            task.niah_task,
            count_tokens=tokenizer,
            max_seq_length=rng.randint(low, task.train_length),
            num_samples=size,
            seed=rng.getrandbits(63),
            tokens_to_generate=ANSWER_TOKENS,
        )
    width = task.train_length
    tokens = torch.full((len(records), width), tokenizer.pad_id, dtype=torch.long)
    labels = torch.full((len(records), width), IGNORE_INDEX, dtype=torch.long)
    for row, record in enumerate(records):
        prompt = tokenizer.encode(record.input + record.answer_prefix)
        answer = tokenizer.encode(answer_text(record))
        sequence = (prompt + answer)[:width]
        tokens[row, : len(sequence)] = torch.tensor(sequence)
        labels[row, len(prompt) : len(sequence)] = torch.tensor(sequence[len(prompt) :])
    return tokens[:, :-1], labels[:, 1:]


class BatchStream:
    """A fresh seeded batch per step: the generator is cheap next to a training step."""

    def __init__(
        self, task: NeedleTask, tokenizer: WordTokenizer, seed: int, device: torch.device
    ) -> None:
        self.task, self.tokenizer, self.seed, self.device = task, tokenizer, seed, device
        self.shortest = shortest_length(task, tokenizer)

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, labels = training_batch(
            self.task, self.tokenizer, self.seed * 1_000_003 + step, self.shortest
        )
        return inputs.to(self.device), labels.to(self.device)


@torch.no_grad()
def greedy_answers(
    model: MixerLM,
    tokenizer: WordTokenizer,
    prompts: Sequence[list[int]],
    new_tokens: int,
    device: torch.device,
) -> list[str]:
    """Greedy continuations of prompts of equal length, decoded, with RULER's post-processing."""
    model.eval()
    ids = torch.tensor(list(prompts), dtype=torch.long, device=device)
    generated = []
    for _ in range(new_tokens):
        next_ids = model(ids)[:, -1].argmax(-1, keepdim=True)
        generated.append(next_ids)
        ids = torch.cat([ids, next_ids], dim=1)
    out = torch.cat(generated, dim=1).tolist()
    return [postprocess_pred(tokenizer.decode(row)) for row in out]


def evaluate_point(
    model: MixerLM,
    tokenizer: WordTokenizer,
    task: NeedleTask,
    length: int,
    depth: float,
    seed: int,
    device: torch.device,
) -> float:
    """RULER's string_match_all (0-100) of the needles read back at one (length, depth)."""
    records = generate(
        task.niah_task,
        count_tokens=tokenizer,
        max_seq_length=length,
        num_samples=task.samples_per_point,
        seed=seed,
        tokens_to_generate=ANSWER_TOKENS,
        depths=depth,
    )
    by_length: dict[int, list[int]] = {}
    for i, record in enumerate(records):
        by_length.setdefault(len(tokenizer.encode(record.input + record.answer_prefix)), []).append(
            i
        )
    preds = [""] * len(records)
    for indices in by_length.values():
        prompts = [tokenizer.encode(records[i].input + records[i].answer_prefix) for i in indices]
        for i, pred in zip(
            indices, greedy_answers(model, tokenizer, prompts, ANSWER_TOKENS, device)
        ):
            preds[i] = pred
    return string_match_all(preds, [r.outputs for r in records])


def evaluate_grid(
    model: MixerLM, tokenizer: WordTokenizer, task: NeedleTask, seed: int, device: torch.device
) -> dict[tuple[int, float], float]:
    scores = {}
    for li, length in enumerate(task.lengths):
        for di, depth in enumerate(task.depths):
            point_seed = EVAL_SEED_OFFSET + seed * 10_007 + li * 101 + di
            scores[(length, depth)] = evaluate_point(
                model, tokenizer, task, length, depth, point_seed, device
            )
    return scores


def grid_metrics(scores: dict[tuple[int, float], float], train_length: int) -> dict[str, float]:
    """The headline score (mean over the grid, 0-100), within and beyond the training length, and
    every point."""

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    metrics = {
        "score": mean(list(scores.values())),
        "score_within_train": mean(
            [s for (length, _), s in scores.items() if length <= train_length]
        ),
        "score_beyond_train": mean(
            [s for (length, _), s in scores.items() if length > train_length]
        ),
    }
    metrics.update({metric_name(length, depth): score for (length, depth), score in scores.items()})
    return {k: v for k, v in metrics.items() if v == v}


def train_and_evaluate(
    task: NeedleTask,
    mechanism: MechanismSpec,
    hparams: dict[str, Any],
    budget: Budget,
    seed: int,
    ctx: CellContext,
) -> CellOutcome:
    device = torch.device(ctx.device)
    tokenizer = default_tokenizer()
    config = model_config(task, len(tokenizer))
    width = task.train_length - 1  # inputs are the sequence shifted by one
    step_flops = training_step_flops(config, mechanism, hparams, task.batch_size, seq_len=width)
    torch.manual_seed(seed)
    model = MixerLM(config, mechanism, hparams).to(device)
    optimizer = adamw(model, task.learning_rate, task.weight_decay)
    result = train_under_budget(
        model,
        BatchStream(task, tokenizer, seed, device),
        lm_loss,
        optimizer,
        budget,
        flops_per_step=step_flops,
        tokens_per_step=task.batch_size * width,
        on_step=ctx.on_step,
    )
    scores = evaluate_grid(model, tokenizer, task, seed, device)
    metrics = grid_metrics(scores, task.train_length)
    return trained_outcome(
        result,
        model,
        metrics,
        layer_costs(mechanism, hparams, task.train_length, task.d_model),
        {
            "flops_per_step": step_flops,
            "forward_flops_per_batch": forward_flops(
                config, mechanism, hparams, task.batch_size, seq_len=width
            ),
            "mechanism_hparams": hparams,
        },
    )
