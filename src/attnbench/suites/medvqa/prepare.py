"""A task's data as tensors: decoded and normalised images, encoded questions, answer classes.

Loading and decoding happen once per process for a data key (every mechanism and seed of a run
trains on the same arrays), and the vocabulary and answer classes come from the training split only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from attnbench.suites.medvqa.records import Example, MedVQAData, decode_image
from attnbench.suites.medvqa.task import MedVQATask
from attnbench.suites.medvqa.text import AnswerClasses, Vocabulary


@dataclass
class Split:
    examples: list[Example]
    images: (
        torch.Tensor
    )  # (M, 3, S, S) float32: every image once, normalised with the training images' statistics
    image_index: torch.Tensor  # (N,) int64: the image of each question
    tokens: torch.Tensor
    token_mask: torch.Tensor
    targets: (
        torch.Tensor
    )  # answer class, -1 where the answer is not a class (VQA-Med: no accepted reading is)


@dataclass
class Prepared:
    data: MedVQAData
    vocabulary: Vocabulary
    answers: AnswerClasses
    splits: dict[str, Split]


def data_key(task: MedVQATask) -> tuple:
    return (
        task.data,
        task.root,
        task.language,
        task.lenient,
        task.image_size,
        task.max_question_tokens,
        task.synthetic_images,
        task.data_seed,
    )


@functools.lru_cache(maxsize=2)
def prepare(key: tuple) -> Prepared:
    data, root, language, lenient, size, length, synthetic_images, seed = key
    if data == "synthetic":
        from attnbench.suites.medvqa.synthetic import generate

        loaded = generate(tuple(synthetic_images), size, seed)
    else:
        from attnbench.suites.medvqa.loaders import load

        loaded = load(data, root, language, lenient)
    vocabulary = Vocabulary.build([e.question for e in loaded.splits["train"]])
    # Training answers are classes as written (VQA-Med's brackets included: "ct w/contrast (iv)" is
    # one class)
    answers = AnswerClasses.build([e.answer for e in loaded.splits["train"]])
    keys = sorted(
        {e.image for rows in loaded.splits.values() for e in rows}
    )  # each image decoded once
    position = {key: i for i, key in enumerate(keys)}
    first = {e.image: e for rows in loaded.splits.values() for e in rows}
    raw = np.stack([_pixels(loaded, first[key], size) for key in keys])
    train_images = sorted({position[e.image] for e in loaded.splits["train"]})
    mean = raw[train_images].mean(axis=(0, 2, 3), dtype=np.float64).reshape(1, 3, 1, 1)
    std = np.maximum(raw[train_images].std(axis=(0, 2, 3), dtype=np.float64), 1e-6).reshape(
        1, 3, 1, 1
    )
    images = torch.from_numpy(((raw - mean) / std).astype(np.float32))
    splits = {}
    for name, rows in loaded.splits.items():
        tokens, mask = vocabulary.encode([e.question for e in rows], length)
        targets = (
            answers.encode_references([e.answer for e in rows])
            if data == "vqa-med-2019"
            else answers.encode([e.answer for e in rows])
        )
        index = torch.tensor([position[e.image] for e in rows], dtype=torch.long)
        splits[name] = Split(
            rows,
            images,
            index,
            torch.from_numpy(tokens),
            torch.from_numpy(mask),
            torch.from_numpy(targets),
        )
    return Prepared(loaded, vocabulary, answers, splits)


def _pixels(loaded: MedVQAData, example: Example, size: int) -> np.ndarray:
    source = loaded.read_image(example.image)
    return (
        source
        if isinstance(source, np.ndarray)
        else decode_image(source, size, f"question {example.qid} ({example.image})")
    )
