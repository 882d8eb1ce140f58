"""Med-VQA metrics: pure functions over predicted and reference answer strings.

* `accuracy`, `closed_accuracy`, `open_accuracy`: exact match after `normalise_answer`, over all
  test questions and within each answer type. Every question of a type is in that type's
  denominator, whatever the prediction says; LLaVA-Med's closed scorer drops a miss whose prediction
  contains "yes" or "no" (substrings of "normal", "not", "nodule") from its denominator, and that is
  not done here. A type with no questions is left out rather than stored as NaN.
* VQA-Med-2019: `strict_accuracy` (the prediction equals one accepted reading of the reference,
  after normalisation) and `bleu` (`bleu.vqa_med_bleu`, averaged over every test item; by default
  with NLTK 3.2's method0 arithmetic, which the published scores need: see `bleu`), and the accuracy
  per question category.
"""

from __future__ import annotations

from typing import Sequence

from attnbench.suites.medvqa.bleu import vqa_med_bleu
from attnbench.suites.medvqa.normalise import expand_reference, normalise_answer


def exact_matches(predictions: Sequence[str], answers: Sequence[str]) -> list[bool]:
    return [
        normalise_answer(p) == normalise_answer(a)
        for p, a in zip(predictions, answers, strict=True)
    ]


def closed_open_accuracy(
    predictions: Sequence[str], answers: Sequence[str], answer_types: Sequence[str]
) -> dict[str, float]:
    hits = exact_matches(predictions, answers)
    return _grouped(hits, answer_types)


def strict_matches(predictions: Sequence[str], references: Sequence[str]) -> list[bool]:
    return [
        normalise_answer(p) in expand_reference(r)
        for p, r in zip(predictions, references, strict=True)
    ]


def vqa_med_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    answer_types: Sequence[str],
    categories: Sequence[str],
    stemmer: str = "snowball",
    nltk: str = "3.2",
) -> dict[str, float]:
    hits = strict_matches(predictions, references)
    metrics = _grouped(hits, answer_types)
    metrics["strict_accuracy"] = metrics["accuracy"]
    metrics["bleu"] = sum(
        vqa_med_bleu(p, r, stemmer, nltk) for p, r in zip(predictions, references)
    ) / len(references)
    for category in sorted(set(categories)):
        chosen = [hit for hit, c in zip(hits, categories) if c == category]
        metrics[f"accuracy/{category}"] = sum(chosen) / len(chosen)
    return metrics


def _grouped(hits: Sequence[bool], answer_types: Sequence[str]) -> dict[str, float]:
    if len(hits) != len(answer_types):
        raise ValueError("one answer type per question")
    metrics = {"accuracy": sum(hits) / len(hits)} if hits else {}
    for kind in ("CLOSED", "OPEN"):
        chosen = [hit for hit, t in zip(hits, answer_types) if t == kind]
        if chosen:
            metrics[f"{kind.lower()}_accuracy"] = sum(chosen) / len(chosen)
    return metrics
