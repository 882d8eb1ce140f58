"""A tiny SECOND copy in the official layout, written by code (no binary files in the repository).

Six 16x16 pairs: four in the training list, two in the validation list, listed as SCanNet's
`train_info.txt` / `val_info.txt` list them (absolute paths from another machine, shuffled).
Labels come both ways: index maps in `label1/ label2/` (8-bit greyscale PNGs) and colour maps in
`label1_rgb/ label2_rgb/`. One pair (`00021`) has no change at all, and in one (`00013`) a 2x2
block of changed pixels is painted an off-palette colour in `label1_rgb`, which the loader must read
as 0 while the index map keeps the true class there.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from attnbench.suites.second.data import index_to_colour

SIZE = 16
TRAIN = ("00003.png", "00013.png", "00015.png", "00016.png")
VAL = ("00011.png", "00021.png")
NO_CHANGE = "00021.png"
OFF_PALETTE = (
    "00013.png",
    (12, 34, 56),
    (slice(4, 6), slice(4, 6)),
)  # name, colour, where (changed pixels)


def pair(name: str, size: int = SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(im1, im2) (H, W, 3) uint8 and (label1, label2) (H, W) uint8 of one named pair."""
    rng = np.random.default_rng(int(name[:5]))
    before = np.repeat(np.repeat(rng.integers(1, 7, (size // 4, size // 4)), 4, 0), 4, 1)
    after = before.copy()
    if name != NO_CHANGE:
        after[2:9, 3:11] = (before[2:9, 3:11] % 6) + 1  # every pixel of the block changes class
    changed = before != after
    images = [
        np.clip(cover[..., None] * 30 + rng.integers(0, 40, (size, size, 3)), 0, 255).astype(
            np.uint8
        )
        for cover in (before, after)
    ]
    labels = [np.where(changed, cover, 0).astype(np.uint8) for cover in (before, after)]
    return images[0], images[1], labels[0], labels[1]


def write_pairs(folder: Path, names: tuple[str, ...], size: int = SIZE) -> None:
    from PIL import Image

    for sub in ("im1", "im2", "label1", "label2", "label1_rgb", "label2_rgb"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        im1, im2, label1, label2 = pair(name, size)
        Image.fromarray(im1).save(folder / "im1" / name)
        Image.fromarray(im2).save(folder / "im2" / name)
        for date, label in (("1", label1), ("2", label2)):
            Image.fromarray(label, mode="L").save(folder / f"label{date}" / name)
            colours = index_to_colour(label)
            if name == OFF_PALETTE[0] and date == "1":
                colours[OFF_PALETTE[2]] = OFF_PALETTE[1]
            Image.fromarray(colours).save(folder / f"label{date}_rgb" / name)


def write_lists(root: Path) -> Path:
    """The released training set in one folder, split by SCanNet-style lists."""
    write_pairs(root, TRAIN + VAL)
    for split, names in (("train", TRAIN), ("val", VAL)):
        lines = [f"/media/someone/Data/ChangeDetection/ST/{split}/im1/{name}" for name in names]
        random.Random(split).shuffle(lines)
        (root / f"{split}_info.txt").write_text("\n".join(lines) + "\n")
    return root


def write_folders(root: Path) -> Path:
    """What SCanNet's split_train_val.py makes: train/ and val/ folders."""
    write_pairs(root / "train", TRAIN)
    write_pairs(root / "val", VAL)
    return root
