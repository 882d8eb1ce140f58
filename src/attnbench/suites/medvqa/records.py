"""What every Med-VQA loader returns: questions in one shape, images behind a key, and what was
skipped.

A row that cannot be used (its image is missing, its answer type is unknown, its answer or question
is empty) stops loading with one ConfigError line that names the file, the question and the problem;
with `lenient=True` the row is skipped instead and counted under its reason, and the counts travel
with every result (`details.skipped`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from attnbench.errors import ConfigError
from attnbench.suites.medvqa.normalise import answer_type_of

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Example:
    qid: str
    image: str  # a key the data set's `read_image` understands
    question: str
    answer: (
        str  # as the data set states it (VQA-Med-2019: with its `#` alternatives and `(...)` parts)
    )
    answer_type: str  # CLOSED or OPEN
    category: str = (
        ""  # VQA-Med-2019's question category, SLAKE's content type; "" where none is given
    )


@dataclass
class MedVQAData:
    name: str
    splits: dict[str, list[Example]]
    read_image: Callable[[str], bytes | Path]
    skipped: Counter = field(default_factory=Counter)

    def sizes(self) -> dict[str, int]:
        return {split: len(rows) for split, rows in self.splits.items()}


class RowChecker:
    """Turns raw rows into Examples, raising or skipping (and counting) the unusable ones."""

    def __init__(self, lenient: bool) -> None:
        self.lenient = lenient
        self.skipped: Counter = Counter()

    def example(
        self,
        where: str,
        qid: object,
        image: str,
        image_ok: bool,
        question: object,
        answer: object,
        stated_type: object = None,
        category: str = "",
        no_image: str | None = None,
    ) -> Example | None:
        qid = str(qid)
        answer_text = "" if answer is None else str(answer).strip()
        question_text = "" if question is None else str(question).strip()
        problem = None
        if not image_ok:
            problem = (
                "missing image",
                no_image or f"question {qid} names image {image!r}, which is not there",
            )
        elif not answer_text:
            problem = ("empty answer", f"question {qid} has an empty answer")
        elif not question_text:
            problem = ("empty question", f"question {qid} has an empty question")
        kind = answer_type_of(stated_type, answer_text) if problem is None else None
        if problem is None and kind is None:
            problem = (
                "unknown answer type",
                f"question {qid} has answer_type {stated_type!r} (expected CLOSED or OPEN)",
            )
        if problem is None:
            return Example(qid, image, question_text, answer_text, kind, category)
        if not self.lenient:
            raise ConfigError(
                f"{where}: {problem[1]} (--set lenient=True skips such rows and counts them)"
            )
        self.skipped[problem[0]] += 1
        return None


def decode_image(source: bytes | Path, size: int, where: str) -> np.ndarray:
    """(3, size, size) uint8 RGB from encoded bytes or a file; a clear error for a corrupt one."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image = image.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(image).transpose(2, 0, 1).copy()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ConfigError(f"cannot read the image of {where}: {exc}") from None
