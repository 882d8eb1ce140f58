"""Med-VQA loaders on fixtures in each official layout, and their handling of unusable rows."""

from __future__ import annotations

import numpy as np
import pytest

from attnbench.errors import ConfigError
from attnbench.suites.medvqa.loaders import load
from attnbench.suites.medvqa.records import decode_image
from attnbench.suites.medvqa.synthetic import generate
from attnbench.suites.medvqa.text import AnswerClasses, Vocabulary, words
from tests.suites.medvqa.fixtures import (
    picture,
    write_mevf,
    write_slake,
    write_vqa_med,
    write_vqa_rad_parquet,
)

pytest.importorskip("PIL")

WRITERS = {
    "vqa-rad": write_vqa_rad_parquet,
    "vqa-rad-mevf": write_mevf,
    "slake": write_slake,
    "vqa-med-2019": write_vqa_med,
}


def test_hugging_face_vqa_rad_derives_closed_from_yes_no_answers(tmp_path):
    data = load("vqa-rad", write_vqa_rad_parquet(tmp_path))
    assert data.sizes() == {"train": 6, "val": 0, "test": 4}
    assert [e.answer_type for e in data.splits["train"]] == [
        "CLOSED",
        "CLOSED",
        "CLOSED",
        "OPEN",
        "OPEN",
        "CLOSED",
    ]
    choice = data.splits["test"][2]
    assert (
        choice.question == "is the mass left or right?" and choice.answer_type == "OPEN"
    )  # derived, not official
    pixels = decode_image(data.read_image(data.splits["train"][1].image), 8, "x")
    assert np.array_equal(pixels, picture(1).transpose(2, 0, 1))


def test_mevf_keeps_its_stated_answer_types(tmp_path):
    data = load("vqa-rad-mevf", write_mevf(tmp_path))
    test = data.splits["test"]
    assert [(e.answer, e.answer_type) for e in test] == [
        ("left", "CLOSED"),
        ("brain", "OPEN"),
        ("no", "CLOSED"),
    ]
    assert data.read_image(test[0].image) == tmp_path / "images" / "synpic4.jpg"


def test_slake_reads_one_language_or_both(tmp_path):
    write_slake(tmp_path)
    english = load("slake", tmp_path)
    assert english.sizes() == {"train": 3, "val": 1, "test": 3}
    assert english.splits["test"][2].category == "Position"
    assert (
        english.read_image(english.splits["test"][0].image)
        == tmp_path / "imgs" / "xmlab4" / "source.jpg"
    )
    assert [e.answer for e in load("slake", tmp_path, "zh").splits["test"]] == ["肺"]
    assert load("slake", tmp_path, "all").sizes() == {"train": 4, "val": 1, "test": 4}
    with pytest.raises(ConfigError, match="language 'fr'"):
        load("slake", tmp_path, "fr")


def test_vqa_med_keeps_reference_alternatives_and_categories(tmp_path):
    data = load("vqa-med-2019", write_vqa_med(tmp_path))
    assert data.sizes() == {"train": 5, "val": 1, "test": 9}
    test = data.splits["test"]
    assert test[6].answer == "esoghageal spasm#diverticulum" and test[6].category == "abnormality"
    assert test[2].question == "is \tthis a t1 weighted image?" and test[2].answer_type == "CLOSED"
    assert {e.category for e in test} == {"modality", "plane", "organ", "abnormality"}


CASES = [
    ("vqa-rad", "missing image", "row 1 has no image"),
    ("vqa-rad", "empty answer", "row 2 has an empty answer"),
    ("vqa-rad-mevf", "missing image", "question test1 names image 'synpic999.jpg'"),
    ("vqa-rad-mevf", "unknown answer type", "answer_type 'MAYBE'"),
    ("slake", "missing image", "xmlab77/source.jpg"),
    ("slake", "unknown answer type", "answer_type 'YESNO'"),
    ("slake", "empty answer", "question 8 has an empty answer"),
    ("vqa-med-2019", "missing image", "synpic16333.jpg"),
    ("vqa-med-2019", "empty answer", "line 4"),
]


@pytest.mark.parametrize("data,fault,message", CASES)
def test_an_unusable_row_is_one_clear_error_or_skipped_and_counted(tmp_path, data, fault, message):
    broken, clean = tmp_path / "broken", tmp_path / "clean"
    broken.mkdir(), clean.mkdir()
    WRITERS[data](broken, fault)
    with pytest.raises(ConfigError, match=message) as raised:
        load(data, broken)
    assert "lenient=True" in str(raised.value) and "\n" not in str(raised.value)
    lenient = load(data, broken, lenient=True)
    assert dict(lenient.skipped) == {fault: 1}
    assert (
        sum(lenient.sizes().values()) == sum(load(data, WRITERS[data](clean)).sizes().values()) - 1
    )


def test_a_missing_folder_says_how_to_get_the_data(tmp_path):
    with pytest.raises(ConfigError, match="BoKelvin/SLAKE"):
        load("slake", tmp_path / "nothing")


def test_synthetic_data_is_deterministic_and_answers_need_the_image():
    data = generate((6, 1, 3), 16, seed=0)
    again = generate((6, 1, 3), 16, seed=0)
    assert data.sizes() == {"train": 18, "val": 3, "test": 9}
    first = data.splits["train"][0]
    assert np.array_equal(data.read_image(first.image), again.read_image(first.image))
    assert data.read_image(first.image).shape == (3, 16, 16)
    types = {e.answer_type for e in generate((40, 0, 1), 8, 1).splits["train"]}
    assert types == {"CLOSED", "OPEN"}


def test_question_words_and_answer_classes_come_from_training():
    assert words("Is there a lesion in the Upper-Left?") == [
        "is",
        "there",
        "a",
        "lesion",
        "in",
        "the",
        "upper",
        "left",
    ]
    assert words("这是CT图像吗") == ["这", "是", "ct", "图", "像", "吗"]
    vocabulary = Vocabulary.build(["is this ct", "what organ"])
    ids, mask = vocabulary.encode(["what is this mri", ""], 3)
    assert vocabulary.words == ("ct", "is", "organ", "this", "what")
    assert ids.tolist() == [
        [6, 3, 5],
        [1, 0, 0],
    ]  # truncated to 3; an empty question is one unknown word
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    assert vocabulary.encode(["is this mri"], 4)[0].tolist() == [[3, 5, 1, 0]]
    classes = AnswerClasses.build(["Yes", "yes.", "Brain"])
    assert classes.answers == ("brain", "yes") and classes.encode(["YES", "liver"]).tolist() == [
        1,
        -1,
    ]
