"""A deterministic, EuroSAT-like synthetic data set for the `smoke` profile: no download, no
licence.

Ten classes named after EuroSAT's, each a procedural texture that loosely imitates the land cover
it is named after (stripes for annual crops, a dot lattice for orchards, a straight band for a
highway, a winding one for a river, rectangles for buildings, ...), with random orientation,
phase, colour and noise per image. Several classes share the same vegetation palette, so colour
alone does not separate them: a model has to see shape and texture. Numbers measured on it say
whether a mechanism trains and how it compares at smoke scale, nothing about satellite imagery.

Generation is vectorised numpy seeded with `numpy.random.default_rng((seed, split, class))`, so a
split is the same on every machine and independent of the other splits' sizes.
"""

from __future__ import annotations

import numpy as np

SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
TINT, CONTRAST, NOISE = 0.4, 0.5, 0.06
GREEN = np.array([0.25, 0.45, 0.20])
DARK_GREEN = np.array([0.10, 0.28, 0.12])
BROWN = np.array([0.50, 0.40, 0.25])
GRAY = np.array([0.55, 0.55, 0.55])
BLUE = np.array([0.12, 0.25, 0.50])
ROOF = np.array([0.65, 0.35, 0.30])


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.meshgrid(np.arange(size) / size, np.arange(size) / size, indexing="ij")
    return y[None], x[None]


def _uniform(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, size=(n, 1, 1))


def _rotated(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along and across a random direction through a random point, in image widths."""
    y, x = _grid(size)
    angle = _uniform(rng, n, 0.0, np.pi)
    cy, cx = _uniform(rng, n, 0.3, 0.7), _uniform(rng, n, 0.3, 0.7)
    along = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    across = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
    return along, across


def _smooth_noise(rng: np.random.Generator, n: int, size: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled noise on a `cells` x `cells` grid: blobs about size/cells pixels
    wide."""
    coarse = rng.standard_normal((n, cells + 1, cells + 1))
    position = np.linspace(0, cells, size, endpoint=False)
    low = position.astype(int)
    frac = position - low
    rows = coarse[:, low] * (1 - frac)[None, :, None] + coarse[:, low + 1] * frac[None, :, None]
    return rows[:, :, low] * (1 - frac)[None, None, :] + rows[:, :, low + 1] * frac[None, None, :]


def _paint(weights: np.ndarray, colour_a: np.ndarray, colour_b: np.ndarray) -> np.ndarray:
    """(n, H, W) weights in [0, 1] blend two colours, or two (n, H, W, 3) pictures, into (n, H,
    W, 3)."""
    w = np.clip(weights, 0.0, 1.0)[..., None]
    return (1 - w) * colour_a + w * colour_b


def _vegetation(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return _paint(0.5 + 0.3 * _smooth_noise(rng, n, size, 3), GREEN, BROWN)


def _rectangles(
    rng: np.random.Generator, n: int, size: int, count: int, low: float, high: float
) -> np.ndarray:
    """(n, H, W) mask of `count` axis-aligned rectangles with sides between low and high image
    widths."""
    y, x = _grid(size)
    y0, x0 = rng.uniform(0, 1, (2, n, count, 1, 1))
    h, w = rng.uniform(low, high, (2, n, count, 1, 1))
    inside = (y[:, None] >= y0) & (y[:, None] < y0 + h) & (x[:, None] >= x0) & (x[:, None] < x0 + w)
    return inside.any(axis=1).astype(float)


def annual_crop(rng, n, size):
    along, _ = _rotated(rng, n, size)
    stripes = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * _uniform(rng, n, 3, 6) * along))
    return _paint(stripes, GREEN, BROWN)


def forest(rng, n, size):
    return _paint(0.5 + 0.5 * _smooth_noise(rng, n, size, 6), DARK_GREEN, GREEN)


def herbaceous_vegetation(rng, n, size):
    return _paint(0.5 + 0.25 * rng.standard_normal((n, size, size)), GREEN, BROWN * 0.9 + 0.1)


def highway(rng, n, size):
    _, across = _rotated(rng, n, size)
    road = (np.abs(across) < _uniform(rng, n, 0.03, 0.07)).astype(float)
    return _paint(road, _vegetation(rng, n, size), GRAY)


def industrial(rng, n, size):
    blocks = _rectangles(rng, n, size, 4, 0.2, 0.45)
    base = _paint(0.5 + 0.2 * _smooth_noise(rng, n, size, 2), GRAY * 0.8, GRAY)
    return _paint(blocks, base, GRAY * 1.5)


def pasture(rng, n, size):
    y, x = _grid(size)
    gradient = _uniform(rng, n, -0.3, 0.3) * (x - 0.5) + _uniform(rng, n, -0.3, 0.3) * (y - 0.5)
    return _paint(0.3 + gradient + 0.05 * rng.standard_normal((n, size, size)), GREEN, BROWN)


def permanent_crop(rng, n, size):
    along, across = _rotated(rng, n, size)
    frequency = _uniform(rng, n, 4, 7)
    trees = (
        np.sin(2 * np.pi * frequency * along) * np.sin(2 * np.pi * frequency * across) > 0.4
    ).astype(float)
    return _paint(0.6 - 0.6 * trees, DARK_GREEN, BROWN)


def residential(rng, n, size):
    houses = _rectangles(rng, n, size, 14, 0.06, 0.14)
    return _paint(houses, _paint(np.full((n, size, size), 0.5), GRAY, GREEN), ROOF)


def river(rng, n, size):
    along, across = _rotated(rng, n, size)
    bend = _uniform(rng, n, 0.08, 0.2) * np.sin(
        2 * np.pi * _uniform(rng, n, 1, 2) * along + _uniform(rng, n, 0, 6)
    )
    water = (np.abs(across - bend) < _uniform(rng, n, 0.04, 0.09)).astype(float)
    return _paint(water, _vegetation(rng, n, size), BLUE)


def sea_lake(rng, n, size):
    _, across = _rotated(rng, n, size)
    shore = across + 0.1 * _smooth_noise(rng, n, size, 3) > _uniform(rng, n, 0.2, 0.6)
    water = _paint(0.5 + 0.3 * _smooth_noise(rng, n, size, 4), BLUE * 0.7, BLUE)
    return _paint(shore, water, _vegetation(rng, n, size))


# In the order of `attnbench.suites.eurosat.data.CLASSES`: a pattern's index is its label.
PATTERNS = (
    annual_crop,
    forest,
    herbaceous_vegetation,
    highway,
    industrial,
    pasture,
    permanent_crop,
    residential,
    river,
    sea_lake,
)


def generate(per_class: int, size: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of every class: uint8 images (N, 3, size, size) and int64 labels (N,),
    class by class."""
    images, labels = [], []
    for label, pattern in enumerate(PATTERNS):
        rng = np.random.default_rng((seed, SPLIT_STREAMS[split], label))
        picture = pattern(rng, per_class, size)
        # Blur the class's palette towards a random colour and fade its pattern, so that neither
        # colour nor contrast names the class on its own; then a colour cast and sensor noise.
        tint = rng.uniform(0.1, 0.7, (per_class, 1, 1, 3))
        blend = rng.uniform(0.0, TINT, (per_class, 1, 1, 1))
        mean = picture.mean(axis=(1, 2), keepdims=True)
        picture = mean + rng.uniform(CONTRAST, 1.0, (per_class, 1, 1, 1)) * (picture - mean)
        picture = (1 - blend) * picture + blend * tint
        picture = picture * rng.uniform(
            0.8, 1.2, (per_class, 1, 1, 3)
        ) + NOISE * rng.standard_normal(picture.shape)
        images.append(np.clip(picture * 255, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2))
        labels.append(np.full(per_class, label, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)
