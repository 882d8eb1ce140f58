"""A deterministic, SECOND-like synthetic set of image pairs for the `smoke` profile: no download.

Each pair starts from a land-cover map of blobs of SECOND's six classes. The second date copies it
and then paints one to three rectangles (none in about one pair in eight) with one new class each,
as a new building or a cleared field appears; the pixels whose class differs are the change.
Labels follow SECOND's convention: the class of each date on changed pixels, 0 everywhere else.

Every class is rendered with its own colour and texture (smooth water, grainy ground, fine-noise low
vegetation, blobby trees, edged buildings, flat sports fields), jittered per image; each date gets
its own illumination and colour cast, and every pixel sensor noise, so that a model has to compare
the two dates semantically rather than subtract them. Numbers measured on it say whether a
mechanism trains and how it compares at smoke scale, nothing about aerial imagery.

Generation is vectorised numpy seeded with `numpy.random.default_rng((seed, split))`.
"""

from __future__ import annotations

import numpy as np

SPLIT_STREAMS = {"train": 0, "val": 1}
NO_CHANGE_FRACTION = 0.125
# Base colour (RGB, 0-1) and texture of classes 1..6: water, ground, low vegetation, tree, building,
# sports field.
BASE = np.array(
    [
        [0.15, 0.25, 0.45],
        [0.50, 0.46, 0.40],
        [0.45, 0.60, 0.30],
        [0.15, 0.35, 0.15],
        [0.60, 0.35, 0.30],
        [0.70, 0.45, 0.25],
    ]
)
GRAIN = np.array([0.02, 0.10, 0.06, 0.04, 0.03, 0.01])  # per-pixel noise
BLOTCH = np.array([0.03, 0.05, 0.04, 0.12, 0.02, 0.01])  # smooth variation
EDGE = 0.25  # how much darker buildings are on their outline


def _smooth(rng: np.random.Generator, n: int, size: int, cells: int, channels: int) -> np.ndarray:
    """(n, channels, size, size) bilinearly upsampled noise: blobs about size/cells pixels wide."""
    coarse = rng.standard_normal((n, channels, cells + 1, cells + 1))
    position = np.linspace(0, cells, size, endpoint=False)
    low, frac = position.astype(int), position - position.astype(int)
    rows = coarse[:, :, low] * (1 - frac)[:, None] + coarse[:, :, low + 1] * frac[:, None]
    return rows[..., low] * (1 - frac) + rows[..., low + 1] * frac


def land_cover(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, size, size) uint8 classes 1..6: the strongest of six smooth random fields at each
    pixel."""
    return (_smooth(rng, n, size, 4, 6).argmax(axis=1) + 1).astype(np.uint8)


def changed_cover(rng: np.random.Generator, before: np.ndarray) -> np.ndarray:
    """The second date: up to three rectangles of one new class each painted over the first
    date's map."""
    n, size, _ = before.shape
    after = before.copy()
    y, x = np.ogrid[:size, :size]
    counts = np.where(rng.random(n) < NO_CHANGE_FRACTION, 0, rng.integers(1, 4, n))
    for rectangle in range(3):
        h, w = rng.integers(size // 6, size // 2 + 1, (2, n))
        top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        new = rng.integers(1, 7, n).astype(np.uint8)
        inside = (
            (y >= top[:, None, None])
            & (y < (top + h)[:, None, None])
            & (x >= left[:, None, None])
            & (x < (left + w)[:, None, None])
            & (rectangle < counts)[:, None, None]
        )
        after = np.where(inside, new[:, None, None], after)
    return after


def render(rng: np.random.Generator, cover: np.ndarray) -> np.ndarray:
    """(n, 3, H, W) uint8 pixels of land-cover maps, with one illumination and colour cast per
    image."""
    n, size, _ = cover.shape
    k = cover.astype(int) - 1
    jitter = BASE[None] + rng.normal(0, 0.04, (n, 6, 3))  # each image's own shade of every class
    colour = (
        np.take_along_axis(jitter, k.reshape(n, -1, 1), axis=1)
        .reshape(n, size, size, 3)
        .transpose(0, 3, 1, 2)
    )
    texture = GRAIN[k][:, None] * rng.standard_normal((n, 3, size, size))
    texture += BLOTCH[k][:, None] * _smooth(rng, n, size, 8, 1)
    building = cover == 5
    outline = building & ~(
        np.roll(building, 1, 1)
        & np.roll(building, -1, 1)
        & np.roll(building, 1, 2)
        & np.roll(building, -1, 2)
    )
    picture = (colour + texture) * (1 - EDGE * outline[:, None])
    picture = picture * rng.uniform(0.8, 1.2, (n, 1, 1, 1)) * rng.uniform(0.9, 1.1, (n, 3, 1, 1))
    picture += 0.03 * rng.standard_normal(picture.shape)
    return np.clip(picture * 255, 0, 255).astype(np.uint8)


def generate(pairs: int, size: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`pairs` image pairs: images (N, 2, 3, size, size) uint8 and labels (N, 2, size, size)
    uint8 (0 = unchanged)."""
    rng = np.random.default_rng((seed, SPLIT_STREAMS[split]))
    before = land_cover(rng, pairs, size)
    after = changed_cover(rng, before)
    changed = before != after
    images = np.stack([render(rng, before), render(rng, after)], axis=1)
    labels = np.stack([np.where(changed, before, 0), np.where(changed, after, 0)], axis=1).astype(
        np.uint8
    )
    return images, labels
