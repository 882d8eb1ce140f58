"""The SECOND loader: both layouts, both label encodings, the colour table, and one clear line
per bad folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("PIL")

from PIL import Image  # noqa: E402

from attnbench.suites.second import data  # noqa: E402
from attnbench.suites.second.data import SecondDataError  # noqa: E402
from tests.suites.second import fixtures as fx  # noqa: E402


def test_the_colour_table_is_the_official_one_and_unknown_colours_are_unchanged():
    assert (
        data.COLOURS[0] == (255, 255, 255)
        and data.COLOURS[5] == (128, 0, 0)
        and len(data.CLASSES) == 7
    )
    colours = np.array(
        [
            [[255, 255, 255], [0, 0, 255], [128, 128, 128], [0, 128, 0]],
            [[0, 255, 0], [128, 0, 0], [255, 0, 0], [12, 34, 56]],
        ],
        dtype=np.uint8,
    )
    assert data.colour_to_index(colours).tolist() == [[0, 1, 2, 3], [4, 5, 6, 0]]


@given(st.lists(st.integers(0, 6), min_size=1, max_size=30))
def test_colours_and_indices_round_trip(classes):
    index = np.array(classes, dtype=np.uint8).reshape(1, -1)
    assert np.array_equal(data.colour_to_index(data.index_to_colour(index)), index)


def test_lists_layout_reads_scannet_lists_with_both_encodings(tmp_path):
    root = fx.write_lists(tmp_path)
    train = data.load_split(root, "lists", "train", "index")
    assert (
        train.names == fx.TRAIN
        and train.images.shape == (4, 2, 3, 16, 16)
        and train.labels.shape == (4, 2, 16, 16)
    )
    for i, name in enumerate(fx.TRAIN):
        im1, im2, label1, label2 = fx.pair(name)
        assert np.array_equal(train.images[i, 0], im1.transpose(2, 0, 1))
        assert np.array_equal(train.images[i, 1], im2.transpose(2, 0, 1))
        assert np.array_equal(train.labels[i, 0], label1) and np.array_equal(
            train.labels[i, 1], label2
        )
    colour = data.load_split(root, "lists", "train", "rgb")
    name, _, where = fx.OFF_PALETTE
    k = fx.TRAIN.index(name)
    assert (
        train.labels[k, 0][where].min() > 0
    )  # changed pixels, with their true class in the index map
    assert (
        colour.labels[k, 0][where] == 0
    ).all()  # an off-palette colour reads as 0, as Color2Index does
    expected = train.labels.copy()
    expected[k, 0][where] = 0
    assert np.array_equal(colour.labels, expected)


def test_folders_layout_gives_the_same_pairs_and_a_pair_without_change_loads(tmp_path):
    lists = data.load_split(fx.write_lists(tmp_path / "a"), "lists", "val", "index")
    folders = data.load_split(fx.write_folders(tmp_path / "b"), "folders", "val", "index")
    assert folders.names == lists.names == fx.VAL
    assert np.array_equal(folders.images, lists.images) and np.array_equal(
        folders.labels, lists.labels
    )
    assert not folders.labels[fx.VAL.index(fx.NO_CHANGE)].any()
    assert (
        data.detect_layout(tmp_path / "b") == "folders"
        and data.detect_layout(tmp_path / "a") == "lists"
    )


def test_a_palette_index_map_reads_its_stored_indices(tmp_path):
    root = fx.write_lists(tmp_path)
    path = root / "label2" / fx.TRAIN[0]
    label = np.asarray(Image.open(path))
    image = Image.fromarray(label, mode="L").convert("P")
    image.putpalette([c for colour in data.COLOURS for c in colour])
    image.save(path)
    assert np.array_equal(data.read_label(path, "index"), label)


def _break(root, how):
    name = fx.TRAIN[1]
    if how == "partner":
        (root / "label2" / name).unlink()
        return f"missing file {root / 'label2' / name} \\(the partner of {root / 'im1' / name}"
    if how == "listed":
        for sub in ("im1", "im2", "label1", "label2"):
            (root / sub / name).unlink()
        return f"missing file {root / 'im1' / name} \\(listed in {root / 'train_info.txt'}"
    if how == "size":
        Image.fromarray(np.zeros((16, 17, 3), np.uint8)).save(root / "im2" / name)
        return f"{root / 'im2' / name} is 17x16 pixels; expected 16x16 like"
    if how == "folder":
        shutil.rmtree(root / "im2")
        return f"missing folder {root / 'im2'}"
    if how == "list":
        (root / "train_info.txt").unlink()
        return f"split list missing: {root / 'train_info.txt'}"
    if how == "mode":
        Image.fromarray(data.index_to_colour(fx.pair(name)[2])).save(root / "label1" / name)
        return (
            f"{root / 'label1' / name} has mode RGB, not a one-channel class-index map; colour maps"
            " .*labels=rgb"
        )
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["partner", "listed", "size", "folder", "list", "mode"])
def test_a_bad_folder_is_one_line_naming_the_file(tmp_path, how):
    root = fx.write_lists(tmp_path)
    message = _break(root, how)
    with pytest.raises(SecondDataError, match=message) as caught:
        data.check_pairs(data.list_pairs(root, "lists", "train", "index"), "index")
    assert "\n" not in str(caught.value)


def test_an_index_map_with_a_class_beyond_six_is_named(tmp_path):
    root = fx.write_lists(tmp_path)
    path = root / "label1" / fx.TRAIN[0]
    Image.fromarray(np.full((16, 16), 9, np.uint8), mode="L").save(path)
    with pytest.raises(
        SecondDataError, match=f"{path} holds class 9; SECOND's index maps hold 0-6"
    ):
        data.load_split(root, "lists", "train", "index")


def test_a_missing_root_and_a_list_naming_a_pair_twice(tmp_path):
    with pytest.raises(SecondDataError, match=f"no SECOND folder at {tmp_path / 'absent'}"):
        data.list_pairs(tmp_path / "absent", "lists", "train", "index")
    root = fx.write_lists(tmp_path / "r")
    (root / "val_info.txt").write_text("a/im1/00011.png\nb/im1/00011.png\n")
    with pytest.raises(SecondDataError, match="lists 00011.png more than once"):
        data.list_pairs(root, "lists", "val", "index")
