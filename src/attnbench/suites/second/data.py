"""SECOND on disk: the `im1/ im2/ label1/ label2/` PNG layout, its split lists, its colour table.

Two layouts, as the SCanNet / Bi-SRNet code reads them:

* `lists`: the released training set in one folder, `ROOT/{im1,im2,label1,label2}/<name>.png`,
  split by SCanNet's `train_info.txt` (2,375 pairs) and `val_info.txt` (593, the evaluation set of
  their papers) in ROOT. A line of a list is a path whose file name is the pair's name.
* `folders`: what SCanNet's `datasets/SECOND/split_train_val.py` makes of it,
  `ROOT/train/{im1,...}` and `ROOT/val/{im1,...}`.

Labels come two ways: `index` reads `label1/ label2/` as class-index maps (0 unchanged, 1-6 the
land-cover classes); `rgb` reads `label1_rgb/ label2_rgb/` as colour maps through the official
colour table, an unknown colour becoming 0 as the official `Color2Index` does.

Everything wrong on disk (a missing folder or list, a pair without its partner file, sizes that do
not match, an image of the wrong kind) is one `SecondDataError` line naming the file and what was
expected; planning checks names, sizes and modes from the PNG headers without decoding pixels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnbench.errors import ConfigError

CLASSES = ("unchanged", "water", "ground", "low vegetation", "tree", "building", "sports field")
COLOURS = (
    (255, 255, 255),
    (0, 0, 255),
    (128, 128, 128),
    (0, 128, 0),
    (0, 255, 0),
    (128, 0, 0),
    (255, 0, 0),
)
SPLITS = ("train", "val")
LAYOUTS = ("lists", "folders")
ENCODINGS = ("index", "rgb")
IMAGE_DIRS = ("im1", "im2")
LABEL_DIRS = {"index": ("label1", "label2"), "rgb": ("label1_rgb", "label2_rgb")}
FOLDERS = {
    "im1": "the first date's RGB images",
    "im2": "the second date's RGB images, named as in im1/",
    "label1": (
        "the first date's class-index maps (--set labels=rgb reads label1_rgb/ label2_rgb/ instead)"
    ),
    "label2": "the second date's class-index maps, named as in im1/",
    "label1_rgb": (
        "the first date's colour-map labels (--set labels=index reads label1/ label2/ instead)"
    ),
    "label2_rgb": "the second date's colour-map labels, named as in im1/",
}
INDEX_MODES = ("L", "P", "I", "I;16")
COLOUR_MODES = ("RGB", "RGBA", "P")
# Per-date means and standard deviations of SECOND's pixels (RGB), from SCanNet's datasets/RS_ST.py.
OFFICIAL_NORMALISATION = {
    "im1": ((113.40, 114.08, 116.45), (48.30, 46.27, 48.14)),
    "im2": ((111.07, 114.04, 118.18), (49.41, 47.01, 47.94)),
}
HOW_TO_GET = (
    "SECOND's training release comes from the captain-whu SCD project page; put its im1/ im2/"
    " label1/ label2/ folders in ROOT with SCanNet's datasets/SECOND/train_info.txt and"
    " val_info.txt, or the train/ and val/ folders split_train_val.py makes"
)


class SecondDataError(ConfigError):
    """A SECOND folder that is not in the expected layout: the CLI prints the one line, exit
    status 2."""


@dataclass(frozen=True)
class Pair:
    """The four files of one image pair (the labels of the chosen encoding)."""

    name: str
    images: tuple[Path, Path]
    labels: tuple[Path, Path]

    @property
    def files(self) -> tuple[Path, ...]:
        return self.images + self.labels


def split_folder(root: Path, layout: str, split: str) -> Path:
    return root / split if layout == "folders" else root


def detect_layout(root: str | Path) -> str:
    """`folders` when ROOT holds train/im1, else `lists` (whose absence then gets the clear
    error)."""
    return "folders" if (Path(root).expanduser() / "train" / "im1").is_dir() else "lists"


def read_list(path: Path) -> list[str]:
    """The pair names of a SCanNet split list (paths, one a line; the file name is the name)."""
    if not path.is_file():
        raise SecondDataError(
            f"split list missing: {path} (SCanNet's datasets/SECOND/{path.name}; "
            "or use the train/ val/ folders layout)"
        )
    names = [
        Path(line.strip().replace("\\", "/")).name
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    names = [name for name in names if name]
    if not names:
        raise SecondDataError(f"split list {path} names no image pairs")
    return names


def _folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise SecondDataError(f"missing folder {path} (expected {what}; {HOW_TO_GET})")
    return path


def list_pairs(root: str | Path, layout: str, split: str, encoding: str) -> list[Pair]:
    """The pairs of a split in file-name order, every partner file checked to exist."""
    if layout not in LAYOUTS or split not in SPLITS or encoding not in ENCODINGS:
        raise ConfigError(
            f"SECOND layout {layout!r}, split {split!r}, labels {encoding!r}: expected one of "
            f"{LAYOUTS}, {SPLITS}, {ENCODINGS}"
        )
    home = Path(root).expanduser()
    if not home.is_dir():
        raise SecondDataError(f"no SECOND folder at {home} ({HOW_TO_GET})")
    base = split_folder(home, layout, split)
    dirs = IMAGE_DIRS + LABEL_DIRS[encoding]
    for name in dirs:
        _folder(base / name, FOLDERS[name])
    if layout == "lists":
        names = read_list(home / f"{split}_info.txt")
        twice = [name for name, count in Counter(names).items() if count > 1]
        if twice:
            raise SecondDataError(f"{home / f'{split}_info.txt'} lists {twice[0]} more than once")
    else:
        names = sorted(p.name for p in (base / "im1").iterdir() if p.suffix.lower() == ".png")
        if not names:
            raise SecondDataError(f"no .png images in {base / 'im1'} ({HOW_TO_GET})")
    listed_in = home / f"{split}_info.txt"
    pairs = []
    for name in sorted(names):
        paths = tuple(base / folder / name for folder in dirs)
        missing = [path for path in paths if not path.is_file()]
        if missing:
            present = [path for path in paths if path.is_file()]
            why = f"the partner of {present[0]}" if present else f"listed in {listed_in}"
            raise SecondDataError(
                f"missing file {missing[0]} ({why}; every pair needs {', '.join(dirs)} "
                "files of the same name)"
            )
        pairs.append(Pair(name, paths[:2], paths[2:]))
    return pairs


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.mode, image.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise SecondDataError(f"cannot read {path}: {exc} (expected a PNG)") from None


def _check_image_mode(path: Path, mode: str) -> None:
    if mode not in ("RGB", "RGBA"):
        raise SecondDataError(f"{path} has mode {mode}; SECOND's im1/ im2/ images are RGB")


def _check_label_mode(path: Path, mode: str, encoding: str) -> None:
    if encoding == "index" and mode not in INDEX_MODES:
        hint = "; colour maps are read with --set labels=rgb" if mode in ("RGB", "RGBA") else ""
        raise SecondDataError(f"{path} has mode {mode}, not a one-channel class-index map{hint}")
    if encoding == "rgb" and mode not in COLOUR_MODES:
        raise SecondDataError(
            f"{path} has mode {mode}, not an RGB colour map; index maps are read with "
            "--set labels=index"
        )


def measured_size(root: str | Path, layout: str) -> int | None:
    """The side of the first training image (None when there is none to read: the listing says
    why)."""
    folder = split_folder(Path(root).expanduser(), layout, "train") / "im1"
    first = min(folder.glob("*.png"), default=None) if folder.is_dir() else None
    if first is None:
        return None
    _, (width, height) = _header(first)
    if width != height:
        raise SecondDataError(
            f"{first} is {width}x{height} pixels; the suite trains on square pairs, as SECOND's "
            "are 512x512"
        )
    return height


def check_pairs(pairs: list[Pair], encoding: str) -> tuple[int, int]:
    """Every file's mode and size from its header: one (height, width) for all; returned."""
    expected = None
    for pair in pairs:
        for path in pair.files:
            mode, size = _header(path)
            if path in pair.images:
                _check_image_mode(path, mode)
            else:
                _check_label_mode(path, mode, encoding)
            if expected is None:
                expected, first = size, path
            elif size != expected:
                raise SecondDataError(
                    f"{path} is {size[0]}x{size[1]} pixels; expected {expected[0]}x{expected[1]} "
                    f"like {first} (every image and label of SECOND has one size)"
                )
    return expected[1], expected[0]


def colour_to_index(colours: np.ndarray) -> np.ndarray:
    """(H, W, 3) colours -> (H, W) uint8 classes through the official colour table; unknown
    colours -> 0."""
    code = (colours[..., 0].astype(np.int64) * 256 + colours[..., 1]) * 256 + colours[..., 2]
    index = np.zeros(code.shape, dtype=np.uint8)
    for label, (r, g, b) in enumerate(COLOURS):
        index[code == (r * 256 + g) * 256 + b] = label
    return index


def index_to_colour(index: np.ndarray) -> np.ndarray:
    """(H, W) classes -> (H, W, 3) uint8 colours, the inverse of `colour_to_index` on the
    palette."""
    return np.asarray(COLOURS, dtype=np.uint8)[index]


def _decode(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise SecondDataError(f"cannot read {path}: {exc} (corrupt or truncated PNG)") from None


def read_image(path: Path) -> np.ndarray:
    """(3, H, W) uint8."""
    with _decode(path) as image:
        _check_image_mode(path, image.mode)
        return np.asarray(image.convert("RGB")).transpose(2, 0, 1).copy()


def read_label(path: Path, encoding: str) -> np.ndarray:
    """(H, W) uint8 classes 0-6, from an index map or a colour map."""
    with _decode(path) as image:
        _check_label_mode(path, image.mode, encoding)
        if encoding == "rgb":
            return colour_to_index(np.asarray(image.convert("RGB")))
        index = np.asarray(image)
    if index.max(initial=0) >= len(CLASSES) or index.min(initial=0) < 0:
        raise SecondDataError(
            f"{path} holds class {int(index.max())}; SECOND's index maps hold 0-{len(CLASSES) - 1} "
            f"({', '.join(CLASSES)})"
        )
    return index.astype(np.uint8)


@dataclass(frozen=True)
class PairSet:
    """A split decoded: images (N, 2, 3, H, W) uint8 (dates on axis 1) and labels (N, 2, H, W)
    uint8."""

    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]


def load_split(root: str | Path, layout: str, split: str, encoding: str) -> PairSet:
    """Decode every pair of a split; sizes are checked first, so a mismatch is named, not a numpy
    error."""
    from attnbench.extras import require_vision

    require_vision("SECOND", ("PIL",))
    pairs = list_pairs(root, layout, split, encoding)
    check_pairs(pairs, encoding)
    images = np.stack([np.stack([read_image(path) for path in pair.images]) for pair in pairs])
    labels = np.stack(
        [np.stack([read_label(path, encoding) for path in pair.labels]) for pair in pairs]
    )
    return PairSet(images, labels, tuple(pair.name for pair in pairs))
