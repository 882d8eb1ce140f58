"""The checks every user-set value goes through: one ConfigError line naming the value."""

import math

import numpy as np
import pytest

from attnbench.errors import ConfigError
from attnbench.values import (
    check_like,
    check_one_of,
    check_split_sizes,
    check_whole,
    expected_like,
    is_whole,
)


@pytest.mark.parametrize(
    "default, value, expected",
    [
        (8, 8, None),
        (8, "abc", "a whole number"),
        (8, 2.0, "a whole number"),
        (8, True, "a whole number"),
        (0.1, 1, None),
        (0.1, math.nan, "a finite number"),
        (0.1, 1e400, "a finite number"),
        (True, 1, "true or false"),
        ("x", 1, "text"),
        ([1], 1, "a list, e.g. [1, 2]"),
        ({"a": 1}, [1], "a table of KEY = VALUE"),
        (None, [1.0, math.inf], "finite numbers throughout"),
        (None, "anything", None),
    ],
)
def test_expected_like(default, value, expected):
    assert expected_like(default, value) == expected


def test_check_like_names_the_value_and_its_default():
    with pytest.raises(
        ConfigError, match=r"num_heads='abc' is not a whole number \(its default is 8\)"
    ):
        check_like(8, "abc", "num_heads")


def test_whole_numbers_include_numpys_but_not_bools():
    assert is_whole(np.int64(3), 1)
    assert not is_whole(True)
    assert not is_whole(0, 1)
    check_whole("x", 1)
    with pytest.raises(ConfigError, match=r"^x=0 must be an integer >= 1$"):
        check_whole("x", 0)


def test_check_one_of_lists_what_is_allowed():
    check_one_of("data", "a", ("a", "b"))
    with pytest.raises(ConfigError, match=r"^data='c' is not one of a, b$"):
        check_one_of("data", "c", ("a", "b"))


@pytest.mark.parametrize("value", [(6, 0, 3), (1, 0, 1)])
def test_split_sizes_accept_an_empty_validation_split(value):
    check_split_sizes("s", value, "image counts")


@pytest.mark.parametrize(
    "value", [None, [6, 2, 3], (6, 2), (0, 2, 3), (6, 2, 0), (6, -1, 3), (6, 2.0, 3)]
)
def test_split_sizes_refuse_anything_else_in_one_line(value):
    with pytest.raises(ConfigError, match=r"^s=.* must be three image counts \(train, val, test\)"):
        check_split_sizes("s", value, "image counts")
