"""Question words to ids, and answers to classes, both built from the training split only.

Words are lower-cased runs of letters and digits; a CJK character is a word of its own (SLAKE's
Chinese questions have no spaces). Id 0 pads, id 1 is a word never seen in training. Answers are
classes over the distinct normalised training answers; a test answer outside them can never be
predicted and still counts in every denominator (`answer_coverage` says how many test answers are
classes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from attnbench.suites.medvqa.normalise import expand_reference, normalise_answer

PAD, UNKNOWN = 0, 1
_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]|[^\W_\u3400-\u4dbf\u4e00-\u9fff]+")


def words(question: str) -> list[str]:
    return _WORD.findall(question.lower())


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]

    @classmethod
    def build(cls, questions: Sequence[str]) -> Vocabulary:
        return cls(tuple(sorted({w for q in questions for w in words(q)})))

    def __len__(self) -> int:
        return len(self.words) + 2

    def encode(self, questions: Sequence[str], length: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, length) int64 ids, right-padded and truncated, and the (N, length) bool mask of
        real words."""
        index = {w: i + 2 for i, w in enumerate(self.words)}
        ids = np.zeros((len(questions), length), dtype=np.int64)
        for row, question in enumerate(questions):
            found = [index.get(w, UNKNOWN) for w in words(question)][:length] or [UNKNOWN]
            ids[row, : len(found)] = found
        return ids, ids != PAD


@dataclass(frozen=True)
class AnswerClasses:
    answers: tuple[str, ...]

    @classmethod
    def build(cls, answers: Sequence[str]) -> AnswerClasses:
        return cls(tuple(sorted({normalise_answer(a) for a in answers})))

    def __len__(self) -> int:
        return len(self.answers)

    def encode(self, answers: Sequence[str]) -> np.ndarray:
        """Class per answer; -1 for one that is not a class (never a training target)."""
        index = {a: i for i, a in enumerate(self.answers)}
        return np.asarray([index.get(normalise_answer(a), -1) for a in answers], dtype=np.int64)

    def encode_references(self, references: Sequence[str]) -> np.ndarray:
        """Class per VQA-Med-2019 reference: the first of its accepted readings that is a class,
        else -1."""
        index = {a: i for i, a in enumerate(self.answers)}
        return np.asarray(
            [next((index[a] for a in expand_reference(r) if a in index), -1) for r in references],
            dtype=np.int64,
        )
