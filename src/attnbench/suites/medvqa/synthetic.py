"""A deterministic Med-VQA-like data set for the `smoke` profile: no download, no licence, no
patients.

Each image is a noisy scan of one "organ" (an ellipse) in one of three modalities (ct: bright organ
on black, mri: mid-grey organ with a dark rim, x-ray: dark organ on a bright field) holding one
lesion, a bright disc or square, in one quadrant. Three questions per image are drawn from five
templates: two closed (yes/no: "is there a lesion in the upper left?", "is the lesion round?") and
three open (where, what shape, which modality). Every answer needs the image; the closed ones also
need the question's words, so a model that reads only one modality cannot score well. Numbers
measured on it say whether a fusion mechanism trains and how it compares at smoke scale, nothing
about radiology.
"""

from __future__ import annotations

import numpy as np

from attnbench.suites.medvqa.records import Example, MedVQAData

QUADRANTS = ("upper left", "upper right", "lower left", "lower right")
SHAPES = ("circle", "square")
MODALITIES = ("ct", "mri", "x-ray")
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
QUESTIONS_PER_IMAGE = 3


def _image(
    rng: np.random.Generator, size: int, modality: int, quadrant: int, shape: int
) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    ry, rx = rng.uniform(0.7, 0.95, 2)
    organ = (y / ry) ** 2 + (x / rx) ** 2 <= 1
    rim = organ & ((y / ry) ** 2 + (x / rx) ** 2 > 0.75)
    background, tissue = ((0.05, 0.6), (0.3, 0.5), (0.85, 0.35))[modality]
    picture = np.where(organ, tissue, background)
    if modality == 1:
        picture = np.where(rim, 0.1, picture)
    cy = (-0.4 if quadrant < 2 else 0.4) + rng.uniform(-0.12, 0.12)
    cx = (-0.4 if quadrant % 2 == 0 else 0.4) + rng.uniform(-0.12, 0.12)
    radius = rng.uniform(0.15, 0.25)
    lesion = (
        (np.hypot(y - cy, x - cx) <= radius)
        if shape == 0
        else ((np.abs(y - cy) <= radius * 0.85) & (np.abs(x - cx) <= radius * 0.85))
    )
    picture = np.where(lesion, 0.95 if modality != 2 else 0.05, picture)
    picture = picture + 0.06 * rng.standard_normal((size, size))
    tint = rng.uniform(0.9, 1.1, 3)
    return np.clip(picture[None] * tint[:, None, None] * 255, 0, 255).astype(np.uint8)


def _questions(
    rng: np.random.Generator, modality: int, quadrant: int, shape: int
) -> list[tuple[str, str]]:
    asked = int(rng.integers(4)) if rng.random() < 0.5 else quadrant
    shape_asked = int(rng.integers(2))
    templates = [
        (
            f"is there a lesion in the {QUADRANTS[asked]} of the image?",
            "yes" if asked == quadrant else "no",
        ),
        (
            f"is the lesion {('round', 'square')[shape_asked]}?",
            "yes" if shape_asked == shape else "no",
        ),
        ("where is the lesion located?", QUADRANTS[quadrant]),
        ("what shape does the abnormality have?", SHAPES[shape]),
        ("which imaging modality was used?", MODALITIES[modality]),
    ]
    chosen = rng.choice(len(templates), QUESTIONS_PER_IMAGE, replace=False)
    return [templates[i] for i in sorted(chosen)]


def generate(images_per_split: tuple[int, int, int], size: int, seed: int) -> MedVQAData:
    pictures: dict[str, np.ndarray] = {}
    splits: dict[str, list[Example]] = {}
    for split, count in zip(SPLIT_STREAMS, images_per_split):
        rng = np.random.default_rng((seed, SPLIT_STREAMS[split]))
        rows = []
        for i in range(count):
            modality, quadrant, shape = (
                int(rng.integers(3)),
                int(rng.integers(4)),
                int(rng.integers(2)),
            )
            key = f"{split}/{i}"
            pictures[key] = _image(rng, size, modality, quadrant, shape)
            for j, (question, answer) in enumerate(_questions(rng, modality, quadrant, shape)):
                kind = "CLOSED" if answer in ("yes", "no") else "OPEN"
                rows.append(Example(f"{split}-{i}-{j}", key, question, answer, kind))
        splits[split] = rows
    return MedVQAData("synthetic", splits, pictures.__getitem__)
