"""EuroSAT loaders on fixtures in both official layouts, split lists, clear errors, and
`attnbench data`."""

from __future__ import annotations

import hashlib
import io
import shutil
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("tifffile")

from attnbench.cli import main  # noqa: E402
from attnbench.errors import ConfigError  # noqa: E402
from attnbench.suites.eurosat import data  # noqa: E402
from tests.suites.eurosat import fixtures as fx  # noqa: E402


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return fx.write_both(tmp_path_factory.mktemp("eurosat"))


@pytest.fixture
def root(pristine, tmp_path) -> Path:
    """A private copy, free to damage."""
    copy = tmp_path / "root"
    shutil.copytree(pristine, copy)
    return copy


def expected_order() -> list[tuple[str, int]]:
    """ImageFolder's: classes sorted, then file names sorted as strings (_1, _10, _2)."""
    return [
        (f"{name}_{index}", label)
        for label, name in enumerate(sorted(data.CLASSES))
        for index in sorted(fx.INDICES, key=str)
    ]


@pytest.mark.parametrize("bands", ["rgb", "all"])
def test_images_come_in_imagefolder_order_with_sorted_folder_labels(pristine, bands):
    loaded = data.load_images(str(pristine), bands)
    assert [(Path(n).stem, int(y)) for n, y in zip(loaded.names, loaded.labels)] == expected_order()
    assert loaded.images.shape == (30, 3 if bands == "rgb" else 13, 64, 64)
    assert loaded.images.dtype == (np.uint8 if bands == "rgb" else np.uint16)


def test_both_layouts_give_the_same_labels_and_pixels_for_the_same_files(pristine):
    rgb, tif = data.load_images(str(pristine), "rgb"), data.load_images(str(pristine), "all")
    assert [Path(n).stem for n in rgb.names] == [Path(n).stem for n in tif.names]
    assert np.array_equal(rgb.labels, tif.labels)
    red, green, blue = (data.BAND_NAMES.index(b) for b in ("B04", "B03", "B02"))
    from_tif = tif.images[:, [red, green, blue]].mean(axis=(2, 3)) / 10
    assert (
        np.abs(from_tif - rgb.images.mean(axis=(2, 3))).max() < 2
    )  # JPEG is lossy: compare mean colours


def test_planar_geotiffs_read_the_same_as_pixel_interleaved(tmp_path):
    fx.write_tif(tmp_path, planar="separate")
    array = data.read_tif(tmp_path.joinpath(*data.TIF_DIR, "River", "River_2.tif"))
    assert np.array_equal(array, fx.bands_of(data.CLASSES.index("River"), 2).transpose(2, 0, 1))


@pytest.mark.parametrize("bands", ["rgb", "all"])
def test_official_split_lists_are_honoured(pristine, bands):
    loaded = data.load_images(str(pristine), bands)
    splits = data.official_split(data.layout(pristine, bands), loaded.names)
    for split, index in splits.items():
        assert sorted(Path(loaded.names[i]).stem for i in index) == sorted(
            f"{name}_{i}" for name in data.CLASSES for i in fx.INDICES if fx.SPLIT_OF[i] == split
        )
        assert sorted(loaded.labels[index].tolist()) == list(range(10))


def test_random_split_is_torch_random_split_and_records_nothing_hidden():
    import torch

    sizes = data.split_sizes(27_000, (0.7, 0.15, 0.15))
    assert sizes == (18_900, 4_050, 4_050)
    ours = data.random_split(103, (0.7, 0.15, 0.15), seed=42)
    theirs = torch.utils.data.random_split(
        range(103),
        list(data.split_sizes(103, (0.7, 0.15, 0.15))),
        generator=torch.Generator().manual_seed(42),
    )
    assert [ours[s].tolist() for s in data.SPLITS] == [list(part.indices) for part in theirs]
    assert sorted(np.concatenate(list(ours.values())).tolist()) == list(range(103))


@pytest.mark.parametrize(
    "ratios", [(0.7, 0.3), (0.5, 0.5, 0.5), (0.0, 0.5, 0.5), (1.0, 0.0, 0.0), "0.7"]
)
def test_bad_split_ratios_are_refused(ratios):
    with pytest.raises(ConfigError, match="split_ratios"):
        data.check_ratios(ratios)


def damage_corrupt_jpeg(root: Path) -> Path:
    path = root / "eurosat" / "2750" / "Forest" / "Forest_2.jpg"
    path.write_bytes(path.read_bytes()[:200])
    return path


def damage_missing_class(root: Path) -> Path:
    path = root / "eurosat" / "2750" / "Pasture"
    shutil.rmtree(path)
    return path


def damage_band_count(root: Path) -> Path:
    import tifffile

    path = root.joinpath(*data.TIF_DIR, "Highway", "Highway_10.tif")
    tifffile.imwrite(
        path, fx.bands_of(3, 10, bands=12), photometric="minisblack", planarconfig="contig"
    )
    return path


def damage_split_list(root: Path) -> Path:
    path = root / "eurosat-val.txt"
    path.unlink()
    return path


@pytest.mark.parametrize(
    "damage,bands,message",
    [
        (damage_corrupt_jpeg, "rgb", "cannot read"),
        (damage_missing_class, "rgb", "class folder missing"),
        (damage_band_count, "all", "has 12 bands; EuroSAT's GeoTIFFs have 13"),
        (damage_split_list, "rgb", "split list missing"),
    ],
)
def test_damage_is_one_line_naming_the_file_in_the_library_and_exit_2_at_the_cli(
    root, capsys, damage, bands, message
):
    path = damage(root)
    with pytest.raises(ConfigError, match=message) as caught:
        loaded = data.load_images(str(root), bands)
        data.official_split(data.layout(root, bands), loaded.names)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    if (
        damage is not damage_split_list
    ):  # a missing list is reported by `data`, refused by runs that need it
        assert main(["data", "eurosat", "--root", str(root), "--bands", bands]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("attnbench: error:") and str(path) in err and "\n" not in err


def test_a_wrong_image_size_and_an_unexpected_folder_are_refused(root):
    from PIL import Image

    Image.fromarray(fx.pixels(0, 1)[:32]).save(root / "eurosat" / "2750" / "River" / "River_1.jpg")
    with pytest.raises(ConfigError, match="River_1.jpg is 64x32 pixels"):
        data.load_images(str(root), "rgb")
    (root / "eurosat" / "2750" / "Clouds").mkdir()
    with pytest.raises(ConfigError, match="unexpected folder .*Clouds"):
        data.list_files(data.layout(root, "rgb"))


@pytest.mark.parametrize("bands", ["rgb", "all"])
def test_data_command_counts_per_class_and_split(pristine, capsys, bands):
    assert main(["data", "eurosat", "--root", str(pristine), "--bands", bands]) == 0
    out = capsys.readouterr().out
    assert "30 images of" in out and ("3 x 64 x 64" if bands == "rgb" else "13 x 64 x 64") in out
    assert "train 10, val 10, test 10" in out
    river = next(line for line in out.splitlines() if line.strip().startswith("River"))
    assert river.split() == ["River", "3", "2,500", "1", "1", "1"]


def test_data_command_without_split_lists_says_where_to_get_them(root, capsys):
    for split in data.SPLITS:
        (root / f"eurosat-{split}.txt").unlink()
    assert main(["data", "eurosat", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "split lists missing" in out and data.SPLIT_LISTS["train"].url in out


@pytest.mark.parametrize("bands", ["rgb", "all"])
def test_data_command_explains_how_to_get_missing_data(tmp_path, capsys, bands):
    assert main(["data", "eurosat", "--root", str(tmp_path), "--bands", bands]) == 1
    out = capsys.readouterr().out
    archive = data.ARCHIVES[bands]
    assert archive.url in out and archive.md5 in out and "--download" in out
    assert all(item.url in out and item.md5 in out for item in data.SPLIT_LISTS.values())
    assert "c8fa014336c82ac7804f0398fcb19387" in data.how_to_get(tmp_path, "rgb")
    assert "5ac12b3b2557aa56e1826e981e8e200e" in data.how_to_get(tmp_path, "all")


def test_a_failed_download_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    def offline(url, timeout):
        raise urllib.error.URLError("no network here")

    with pytest.raises(ConfigError, match="could not download .*EuroSAT.zip: no network here"):
        data.download(tmp_path, "rgb", urlopen=offline)
    assert not any(tmp_path.rglob("*.part"))
    monkeypatch.setattr("urllib.request.urlopen", offline)
    assert main(["data", "eurosat", "--root", str(tmp_path), "--download"]) == 2
    assert "no network here" in capsys.readouterr().err


def test_download_checks_md5_and_unpacks_into_the_torchvision_layout(
    pristine, tmp_path, monkeypatch
):
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        for path in (pristine / "eurosat").rglob("*.jpg"):
            archive.write(path, path.relative_to(pristine / "eurosat"))
    served = {
        "archive": bundle.getvalue(),
        **{s: (pristine / f"eurosat-{s}.txt").read_bytes() for s in data.SPLITS},
    }
    md5 = {key: hashlib.md5(value).hexdigest() for key, value in served.items()}
    monkeypatch.setitem(
        data.ARCHIVES,
        "rgb",
        data.Download("https://x/EuroSAT.zip", md5["archive"], "eurosat/EuroSAT.zip", "eurosat"),
    )
    for split in data.SPLITS:
        monkeypatch.setitem(
            data.SPLIT_LISTS,
            split,
            data.Download(f"https://x/{split}", md5[split], f"eurosat-{split}.txt"),
        )

    def fake(url, timeout):
        return io.BytesIO(served["archive" if url.endswith(".zip") else url.rsplit("/", 1)[1]])

    written = data.download(tmp_path, "rgb", urlopen=fake)
    assert len(written) == 4 and data.layout(tmp_path, "rgb").exists()
    assert data.inventory(tmp_path, "rgb").per_split["test"]["SeaLake"] == 1
    served["train"] = b"tampered"
    (tmp_path / "eurosat-train.txt").unlink()
    with pytest.raises(ConfigError, match="arrived with md5"):
        data.download(tmp_path, "rgb", urlopen=fake)
