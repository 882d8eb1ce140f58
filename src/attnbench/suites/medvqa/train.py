"""One Med-VQA cell: train the model under the budget, predict the test answers, score them."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.mechanism import MechanismSpec
from attnbench.suite import CellContext
from attnbench.suites.medvqa.metrics import closed_open_accuracy, vqa_med_metrics
from attnbench.suites.medvqa.model import Batch, VQAModel, forward_flops
from attnbench.suites.medvqa.prepare import Split, data_key, prepare
from attnbench.suites.medvqa.task import MedVQATask
from attnbench.toolkit.samplers import EpochSampler
from attnbench.toolkit.training import (
    adamw,
    placed_mechanism_costs,
    train_under_budget,
    trained_outcome,
)

EVAL_BATCH = 256


def _batch(split: Split, index: torch.Tensor, device: torch.device) -> Batch:
    return Batch(
        split.images[split.image_index[index]].to(device),
        split.tokens[index].to(device),
        split.token_mask[index].to(device),
    )


@torch.no_grad()
def predict(
    model: VQAModel, split: Split, answers: tuple[str, ...], device: torch.device
) -> list[str]:
    model.eval()
    chosen = [
        model(_batch(split, index, device)).argmax(-1).cpu()
        for index in torch.arange(len(split.examples)).split(EVAL_BATCH)
    ]
    return [answers[i] for i in torch.cat(chosen).tolist()] if chosen else []


def score(task: MedVQATask, split: Split, predictions: list[str]) -> dict[str, float]:
    rows = split.examples
    if task.data == "vqa-med-2019":
        return vqa_med_metrics(
            predictions,
            [e.answer for e in rows],
            [e.answer_type for e in rows],
            [e.category for e in rows],
            task.bleu_stemmer,
            task.bleu_nltk,
        )
    return closed_open_accuracy(
        predictions, [e.answer for e in rows], [e.answer_type for e in rows]
    )


def train_and_evaluate(
    task: MedVQATask,
    mechanism: MechanismSpec,
    hparams: dict[str, Any],
    budget: Budget,
    seed: int,
    ctx: CellContext,
) -> CellOutcome:
    device = torch.device(ctx.device)
    prepared = prepare(data_key(task))
    train = prepared.splits["train"]
    config = task.model_config(len(prepared.vocabulary), len(prepared.answers))
    torch.manual_seed(seed)
    model = VQAModel(config, mechanism, hparams).to(device)
    optimizer = adamw(model, task.learning_rate, task.weight_decay)
    usable = (train.targets >= 0).nonzero().flatten()
    sampler = EpochSampler(usable, task.batch_size, seed, partial_ok=True)

    def next_batch(step: int) -> tuple[Batch, torch.Tensor]:
        index = sampler(step)
        return _batch(train, index, device), train.targets[index].to(device)

    # A step counts as three forward passes, as the default budget does (FlopCounterMode measures
    # that less the patch embedding's gradient with respect to the pixels, which nothing needs).
    step_flops = 3 * forward_flops(config, mechanism, hparams, task.batch_size)["total"]
    result = train_under_budget(
        model,
        next_batch,
        F.cross_entropy,
        optimizer,
        budget,
        flops_per_step=step_flops,
        tokens_per_step=task.batch_size,
        on_step=ctx.on_step,
    )
    answers = prepared.answers.answers
    test = prepared.splits["test"]
    metrics = score(task, test, predict(model, test, answers, device))
    metrics["answer_coverage"] = float((test.targets >= 0).float().mean())
    if prepared.splits.get("val") and prepared.splits["val"].examples:
        metrics["val_accuracy"] = score(
            task, prepared.splits["val"], predict(model, prepared.splits["val"], answers, device)
        )["accuracy"]
    per_question = forward_flops(config, mechanism, hparams, batch=1)
    types = [e.answer_type for e in test.examples]
    return trained_outcome(
        result,
        model,
        metrics,
        placed_mechanism_costs(per_question),
        {
            "epochs": result.meter.steps / sampler.per_epoch,
            "split_sizes": prepared.data.sizes(),
            "closed_open_counts": {"CLOSED": types.count("CLOSED"), "OPEN": types.count("OPEN")},
            "skipped": dict(prepared.data.skipped),
            "answer_classes": len(answers),
            "vocabulary": len(prepared.vocabulary),
            "metric_version": task.metric_version(),
            "flops_per_step": step_flops,
            "forward_flops_per_question": per_question,
            "mechanism_hparams": hparams,
        },
    )
