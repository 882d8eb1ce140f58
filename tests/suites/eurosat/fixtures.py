"""Tiny EuroSAT copies in both official layouts, written by code (no binary files in the
repository).

Every one of the 10 class folders holds three 64x64 images, `<Class>_10`, `<Class>_2`, `<Class>_1`,
created in that order, with the class folders created in reverse order: neither creation order nor
numeric order is the sorted order ImageFolder uses (`_1`, `_10`, `_2`), so a loader that labels or
orders by anything else is caught. The pixels of an image depend only on its class and index, so
the same file has the same content in both layouts (the 13-band copy holds it in B04, B03, B02).
The split lists put `_10` in train, `_2` in val and `_1` in test, listed in shuffled order.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from attnbench.suites.eurosat.data import BAND_NAMES, CLASSES, TIF_DIR

INDICES = (10, 2, 1)  # creation order
SPLIT_OF = {10: "train", 2: "val", 1: "test"}


def pixels(label: int, index: int) -> np.ndarray:
    """(64, 64, 3) uint8, distinct per class and index."""
    rng = np.random.default_rng((label, index))
    base = rng.integers(30, 220, size=3)
    return np.clip(base + rng.integers(-20, 20, size=(64, 64, 3)), 0, 255).astype(np.uint8)


def write_rgb(root: Path) -> Path:
    from PIL import Image

    folder = root / "eurosat" / "2750"
    for label, name in reversed(list(enumerate(CLASSES))):
        (folder / name).mkdir(parents=True)
        for index in INDICES:
            Image.fromarray(pixels(label, index)).save(
                folder / name / f"{name}_{index}.jpg", quality=95
            )
    return folder


def write_tif(root: Path, bands: int = len(BAND_NAMES), planar: str = "contig") -> Path:
    import tifffile

    folder = root.joinpath(*TIF_DIR)
    for label, name in reversed(list(enumerate(CLASSES))):
        (folder / name).mkdir(parents=True)
        for index in INDICES:
            image = bands_of(label, index, bands)
            tifffile.imwrite(
                folder / name / f"{name}_{index}.tif",
                image if planar == "contig" else image.transpose(2, 0, 1),
                planarconfig=planar,
                photometric="minisblack",
            )
    return folder


def bands_of(label: int, index: int, bands: int = len(BAND_NAMES)) -> np.ndarray:
    """(64, 64, bands) uint16, as GDAL writes EuroSAT's GeoTIFFs (pixel-interleaved); RGB in B04,
    B03, B02."""
    image = np.zeros((64, 64, bands), dtype=np.uint16)
    rgb = pixels(label, index).astype(np.uint16) * 10
    for channel, band in enumerate(("B04", "B03", "B02")):
        if BAND_NAMES.index(band) < bands:
            image[..., BAND_NAMES.index(band)] = rgb[..., channel]
    return image


def write_split_lists(root: Path) -> None:
    for split in ("train", "val", "test"):
        names = [
            f"{name}_{index}.jpg"
            for name in CLASSES
            for index in INDICES
            if SPLIT_OF[index] == split
        ]
        random.Random(split).shuffle(names)
        (root / f"eurosat-{split}.txt").write_text("\n".join(names) + "\n")


def write_both(root: Path) -> Path:
    write_rgb(root)
    write_tif(root)
    write_split_lists(root)
    return root
