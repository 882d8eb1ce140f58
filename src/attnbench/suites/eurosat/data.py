"""EuroSAT in its two official on-disk formats, its split lists, and how to get them.

* RGB JPEGs in torchvision's layout (`torchvision.datasets.EuroSAT`):
  `ROOT/eurosat/2750/<Class>/<Class>_<i>.jpg`.
* 13-band GeoTIFFs in torchgeo's layout (`torchgeo.datasets.EuroSAT`):
  `ROOT/ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_<i>.tif`, bands
  B01..B12 then B8A, with torchgeo's split lists `ROOT/eurosat-{train,val,test}.txt` (Google's
  "In-domain representation learning for remote sensing" splits, 16,200 / 5,400 / 5,400 images;
  names listed as `.jpg`, read as `.tif` in the 13-band layout, as torchgeo does).

Labels are ImageFolder's: the index of the class folder in sorted order (AnnualCrop = 0 ... SeaLake
= 9), and a class's files come in sorted name order, so the order of images is torchvision's and a
random split reproduces `torch.utils.data.random_split` on torchvision's data set exactly.
Anything wrong on disk (a missing class folder, a corrupt image, a wrong band count, a missing
split list) is one ConfigError line that names the file.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from attnbench.errors import ConfigError
from attnbench.extras import require_vision

CLASSES = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)
CLASS_COUNTS = {
    "AnnualCrop": 3000,
    "Forest": 3000,
    "HerbaceousVegetation": 3000,
    "Highway": 2500,
    "Industrial": 2500,
    "Pasture": 2000,
    "PermanentCrop": 2500,
    "Residential": 3000,
    "River": 2500,
    "SeaLake": 3000,
}
BAND_NAMES = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B09",
    "B10",
    "B11",
    "B12",
    "B8A",
)
BANDS = ("rgb", "all")
SPLITS = ("train", "val", "test")
OFFICIAL_SPLIT_SIZES = {"train": 16_200, "val": 5_400, "test": 5_400}
IMAGE_SIZE = 64
TIF_DIR = ("ds", "images", "remote_sensing", "otherDatasets", "sentinel_2", "tif")


@dataclass(frozen=True)
class Download:
    url: str
    md5: str
    target: str  # where the file goes, relative to ROOT
    unpack_into: str | None = None  # unzip into this folder (relative to ROOT)
    size: str = ""


_TORCHGEO = (
    "https://hf.co/datasets/torchgeo/eurosat/resolve/1ce6f1bfb56db63fd91b6ecc466ea67f2509774c/"
)
ARCHIVES = {
    # torchvision.datasets.EuroSAT downloads this and unpacks it into ROOT/eurosat.
    "rgb": Download(
        "https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
        "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
        "c8fa014336c82ac7804f0398fcb19387",
        "eurosat/EuroSAT.zip",
        "eurosat",
        "about 90 MB",
    ),
    "all": Download(
        _TORCHGEO + "EuroSATallBands.zip",
        "5ac12b3b2557aa56e1826e981e8e200e",
        "EuroSATallBands.zip",
        ".",
        "2.07 GB",
    ),
}
SPLIT_LISTS = {
    split: Download(_TORCHGEO + f"eurosat-{split}.txt", md5, f"eurosat-{split}.txt")
    for split, md5 in (
        ("train", "908f142e73d6acdf3f482c5e80d851b1"),
        ("val", "95de90f2aa998f70a3b2416bfe0687b4"),
        ("test", "7ae5ab94471417b6e315763121e67c5f"),
    )
}


@dataclass(frozen=True)
class Layout:
    """Where one format of EuroSAT lives under ROOT."""

    root: Path
    bands: str

    @property
    def image_dir(self) -> Path:
        return (
            self.root.joinpath("eurosat", "2750")
            if self.bands == "rgb"
            else self.root.joinpath(*TIF_DIR)
        )

    @property
    def suffix(self) -> str:
        return ".jpg" if self.bands == "rgb" else ".tif"

    @property
    def channels(self) -> int:
        return 3 if self.bands == "rgb" else len(BAND_NAMES)

    @property
    def title(self) -> str:
        return (
            "RGB JPEGs, torchvision's layout"
            if self.bands == "rgb"
            else "13-band GeoTIFFs (B01..B12, B8A), torchgeo's layout"
        )

    def split_list(self, split: str) -> Path:
        return self.root / SPLIT_LISTS[split].target

    def exists(self) -> bool:
        return self.image_dir.is_dir()


def layout(root: str | Path, bands: str = "rgb") -> Layout:
    if bands not in BANDS:
        raise ConfigError(f"EuroSAT bands {bands!r} is not one of {', '.join(BANDS)}")
    return Layout(Path(root).expanduser(), bands)


@dataclass(frozen=True)
class FileList:
    """Every image of a layout in ImageFolder's order, with its label."""

    paths: tuple[Path, ...]
    labels: tuple[int, ...]

    @property
    def names(self) -> list[str]:
        return [path.name for path in self.paths]


def list_files(where: Layout) -> FileList:
    """The images on disk, without reading them; a clear error for a missing or unexpected class
    folder."""
    folder = where.image_dir
    if not where.exists():
        raise ConfigError(
            f"no EuroSAT {where.bands} images at {folder}: `attnbench data eurosat --root"
            f" {where.root} --bands {where.bands}` says how to get them"
        )
    found = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    for name in CLASSES:
        if name not in found:
            raise ConfigError(
                f"EuroSAT class folder missing: {folder / name} (expected the 10 classes "
                f"{', '.join(CLASSES)})"
            )
    for name in found:
        if name not in CLASSES:
            raise ConfigError(
                f"unexpected folder {folder / name}: EuroSAT's class folders are"
                f" {', '.join(CLASSES)}"
            )
    paths, labels = [], []
    for label, name in enumerate(found):  # sorted folder names: ImageFolder's class indices
        files = sorted(
            p for p in (folder / name).iterdir() if p.suffix.lower() == where.suffix and p.is_file()
        )
        if not files:
            raise ConfigError(
                f"EuroSAT class folder {folder / name} holds no {where.suffix} images"
            )
        paths += files
        labels += [label] * len(files)
    return FileList(tuple(paths), tuple(labels))


def read_jpeg(path: Path) -> np.ndarray:
    """(3, 64, 64) uint8 from one of EuroSAT's RGB JPEGs."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode, array = image.mode, np.asarray(image)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ConfigError(
            f"cannot read {path}: {exc} (corrupt or truncated; unpack the archive again)"
        ) from None
    if mode != "RGB":
        raise ConfigError(f"{path} is a {mode} image; EuroSAT's JPEGs are RGB")
    return _checked(path, array.transpose(2, 0, 1))


def read_tif(path: Path) -> np.ndarray:
    """(13, 64, 64) uint16 from one of EuroSAT's GeoTIFFs, bands in file order (B01..B12, B8A)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array, axes = series.asarray(), series.axes
    except (
        Exception
    ) as exc:  # tifffile raises many types for a damaged file; all mean the same here
        raise ConfigError(
            f"cannot read {path}: {type(exc).__name__}: {exc} (corrupt or truncated)"
        ) from None
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3:
        band_axis = next((i for i, axis in enumerate(axes) if axis not in "YX"), 0)
        array = np.moveaxis(array, band_axis, 0)
    else:
        raise ConfigError(
            f"{path} has shape {array.shape}; EuroSAT's GeoTIFFs are one 13-band 64x64 image"
        )
    if array.shape[0] != len(BAND_NAMES):
        raise ConfigError(
            f"{path} has {array.shape[0]} bands; EuroSAT's GeoTIFFs have {len(BAND_NAMES)} "
            f"({', '.join(BAND_NAMES)})"
        )
    if array.dtype != np.uint16:
        raise ConfigError(f"{path} holds {array.dtype} pixels; EuroSAT's GeoTIFFs hold uint16")
    return _checked(path, array)


def _checked(path: Path, array: np.ndarray) -> np.ndarray:
    if array.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ConfigError(
            f"{path} is {array.shape[2]}x{array.shape[1]} pixels; EuroSAT's images are "
            f"{IMAGE_SIZE}x{IMAGE_SIZE}"
        )
    return np.ascontiguousarray(array)


@dataclass(frozen=True)
class ImageSet:
    """Every image of a layout, decoded: uint8 (RGB) or uint16 (13 bands), (N, C, 64, 64)."""

    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    classes: tuple[str, ...] = CLASSES


def load_images(root: str, bands: str) -> ImageSet:
    """Decode every image (the suite keeps the normalised splits it makes of them, one decode per
    process)."""
    require_vision()
    where = layout(root, bands)
    files = list_files(where)
    read = read_jpeg if bands == "rgb" else read_tif
    images = np.stack([read(path) for path in files.paths])
    return ImageSet(images, np.asarray(files.labels, dtype=np.int64), tuple(files.names))


def read_split_list(where: Layout, split: str) -> list[str]:
    """The names in torchgeo's split list, as they will be found in this layout (.jpg read as
    .tif)."""
    path = where.split_list(split)
    if not path.is_file():
        raise ConfigError(
            f"split list missing: {path} (torchgeo's {split} list; `attnbench data eurosat --root "
            f"{where.root}` says how to get it, or use --set split=random)"
        )
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [Path(line).stem + where.suffix for line in lines if line]


def official_split(where: Layout, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Indices (in ImageFolder order, as torchgeo filters it) of each split list's images."""
    position = {name: i for i, name in enumerate(names)}
    splits = {}
    for split in SPLITS:
        listed = read_split_list(where, split)
        absent = [name for name in listed if name not in position]
        if absent:
            raise ConfigError(
                f"{where.split_list(split)} lists {len(absent)} images that are not under "
                f"{where.image_dir}, e.g. {absent[0]}"
            )
        splits[split] = np.sort(np.asarray([position[name] for name in listed], dtype=np.int64))
    return splits


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    if (
        not isinstance(ratios, (list, tuple))
        or len(ratios) != 3
        or any(isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0 for r in ratios)
        or abs(sum(ratios) - 1.0) > 1e-6
        or ratios[0] <= 0
        or ratios[2] <= 0
    ):
        raise ConfigError(
            f"EuroSAT split_ratios={ratios!r} must be three fractions (train, val, test) that sum "
            "to 1, with train and test above 0"
        )
    return float(ratios[0]), float(ratios[1]), float(ratios[2])


def split_sizes(count: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """Train and val sizes rounded down, the rest to test, as the balanced-attention authors'
    code splits."""
    train, val, _ = check_ratios(ratios)
    return int(train * count), int(val * count), count - int(train * count) - int(val * count)


def random_split(count: int, ratios: Sequence[float], seed: int) -> dict[str, np.ndarray]:
    """The indices `torch.utils.data.random_split(dataset, sizes,
    generator=Generator().manual_seed(seed))` gives."""
    import torch

    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).numpy()
    sizes = split_sizes(count, ratios)
    ends = np.cumsum(sizes)
    return {split: order[end - size : end] for split, size, end in zip(SPLITS, sizes, ends)}


def train_count(root: str, bands: str, split: str, ratios: Sequence[float] | None) -> int:
    """Training images of a split, from the listing alone (planning reads no pixels)."""
    where = layout(root, bands)
    files = list_files(where)
    if split == "official":
        return len(read_split_list(where, "train"))
    return split_sizes(len(files.paths), ratios or ())[0]


# ---------------------------------------------------------------- what is there, and how to get it


@dataclass
class Inventory:
    """What `attnbench data eurosat` reports: images per class, and per split where the lists are
    present."""

    where: Layout
    per_class: dict[str, int]
    per_split: dict[str, dict[str, int]] | None
    missing_lists: list[str]  # splits whose list is not there
    shape: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.per_class.values())


def inventory(root: str | Path, bands: str = "rgb") -> Inventory:
    """Decode every image (a corrupt one is a clear error) and count images per class and split."""
    where = layout(root, bands)
    loaded = load_images(str(where.root), bands)
    per_class = {name: int((loaded.labels == i).sum()) for i, name in enumerate(loaded.classes)}
    missing = [split for split in SPLITS if not where.split_list(split).is_file()]
    per_split = None
    if not missing:
        splits = official_split(where, loaded.names)
        per_split = {
            split: {
                name: int((loaded.labels[index] == i).sum())
                for i, name in enumerate(loaded.classes)
            }
            for split, index in splits.items()
        }
    return Inventory(where, per_class, per_split, missing, tuple(loaded.images.shape[1:]))


def describe(found: Inventory) -> str:
    """The inventory as the lines the CLI prints."""
    where = found.where
    lines = [
        f"EuroSAT, {where.title}, at {where.image_dir}",
        f"{found.total:,} images of {' x '.join(map(str, found.shape))} (bands x height x width)",
    ]
    header = f"  {'class':<22}{'images':>8}{'expected':>10}"
    if found.per_split:
        header += "".join(f"{split:>8}" for split in SPLITS)
    lines.append(header)
    for name, count in found.per_class.items():
        row = f"  {name:<22}{count:>8,}{CLASS_COUNTS[name]:>10,}"
        if found.per_split:
            row += "".join(f"{found.per_split[split][name]:>8,}" for split in SPLITS)
        lines.append(row)
    if found.per_split:
        sizes = ", ".join(f"{split} {sum(found.per_split[split].values()):,}" for split in SPLITS)
        lines.append(
            f"split lists (torchgeo's, --set split=official): {sizes} "
            f"(the full data set has {', '.join(f'{v:,}' for v in OFFICIAL_SPLIT_SIZES.values())})"
        )
    else:
        lines.append("split lists missing (only --set split=random works without them):")
        lines += [
            f"  {where.split_list(split)} from {SPLIT_LISTS[split].url} (md5"
            f" {SPLIT_LISTS[split].md5})"
            for split in found.missing_lists
        ]
    return "\n".join(lines)


def how_to_get(root: str | Path, bands: str = "rgb") -> str:
    """The exact steps that put EuroSAT where the loaders look."""
    where = layout(root, bands)
    archive = ARCHIVES[bands]
    home, target = shlex.quote(str(where.root)), where.root / archive.target
    quoted = shlex.quote(str(target))
    lines = [
        f"EuroSAT ({where.title}) is not at {where.image_dir}.",
        f"Download and unpack it ({archive.size}) with:",
        f"  attnbench data eurosat --root {home} --bands {bands} --download",
        "or by hand:",
        f"  mkdir -p {shlex.quote(str(target.parent))}",
        f"  curl -L -o {quoted} {archive.url}",
        f"  md5sum {quoted}   # expect {archive.md5}",
        f"  unzip -q {quoted} -d {shlex.quote(str(where.root / (archive.unpack_into or '.')))}",
        "and torchgeo's split lists (train/val/test; needed by --set split=official):",
    ]
    lines += [
        f"  curl -L -o {shlex.quote(str(where.root / item.target))} {item.url}   # md5 {item.md5}"
        for item in SPLIT_LISTS.values()
    ]
    run = f"attnbench run --suite eurosat --set root={home}" + (
        " --set bands=all" if bands == "all" else ""
    )
    lines.append(
        f"Then `attnbench data eurosat --root {home} --bands {bands}` checks it and `{run}`"
        " uses it."
    )
    return "\n".join(lines)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(item: Download, root: Path, urlopen: Callable[..., Any]) -> Path:
    """Download one file (unless a copy with the right md5 is there), check its md5, return its
    path."""
    target = root / item.target
    if target.is_file() and _md5(target) == item.md5:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urlopen(item.url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as exc:  # URLError, timeouts and refused connections are all OSErrors
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise ConfigError(
            f"could not download {item.url}: {reason} (without --download, `attnbench data eurosat "
            f"--root {root}` prints the steps to do by hand)"
        ) from None
    got = _md5(partial)
    if got != item.md5:
        partial.unlink()
        raise ConfigError(f"{item.url} arrived with md5 {got} instead of {item.md5}; try again")
    partial.replace(target)
    return target


def download(
    root: str | Path, bands: str = "rgb", urlopen: Callable[..., Any] | None = None
) -> list[Path]:
    """Fetch and unpack the archive (unless its images are there) and the split lists; the files
    written."""
    import urllib.request

    where = layout(root, bands)
    opener = urlopen or urllib.request.urlopen
    written = []
    if not where.exists():
        archive = ARCHIVES[bands]
        path = fetch(archive, where.root, opener)
        try:
            with zipfile.ZipFile(path) as bundle:
                bundle.extractall(where.root / (archive.unpack_into or "."))
        except zipfile.BadZipFile as exc:
            raise ConfigError(
                f"cannot unpack {path}: {exc}; delete it and download again"
            ) from None
        if not where.exists():
            raise ConfigError(f"unpacked {path}, but found no {where.image_dir}")
        written.append(path)
    written += [fetch(item, where.root, opener) for item in SPLIT_LISTS.values()]
    return written
