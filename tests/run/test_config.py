"""Run configuration files: valid ones load, and anything else is one ConfigError, never a
traceback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnbench.errors import ConfigError
from attnbench.run.config import RunConfig, load_run_config, parse_run_config

GOOD = """
suite = "long-context"
mechanisms = ["mha", "linear"]
seeds = 2
budget = 2e12
budget_kind = "flops"
profile = "smoke"
backend = "lm-eval"

[hparams]
window = 64

[settings]
lengths = [128, 256]
"""


def test_a_full_file_loads(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(GOOD)
    config = load_run_config(path)
    assert config == RunConfig(
        suite="long-context",
        mechanisms=("mha", "linear"),
        seeds=2,
        budget=2e12,
        budget_kind="flops",
        profile="smoke",
        backend="lm-eval",
        hparams={"window": 64},
        settings={"lengths": [128, 256]},
    )


@pytest.mark.parametrize(
    "text,message",
    [
        ('sute = "mqar"', "unknown key 'sute'; did you mean suite?"),
        ("seeds = 0", "seeds = 0 is not a positive integer"),
        ("seeds = true", "is not a positive integer"),
        ("budget = -1", "is not a positive number"),
        ("budget = nan", "is not a positive number"),
        ('budget_kind = "joules"', "is not one of flops"),
        ('backend = "vllm"', "backend = 'vllm' is not one of native, lm-eval"),
        ("backend = 1", "backend = 1 is not one of native, lm-eval"),
        ("mechanisms = [1, 2]", "is not a list of mechanism names"),
        ("hparams = 3", "is not a table"),
        ('suite = "', "not valid TOML"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_run_config(path)
    assert (
        message in str(caught.value)
        and str(path) in str(caught.value)
        and "\n" not in str(caught.value)
    )


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_run_config(tmp_path / "absent.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read it"):
        load_run_config(tmp_path / "bin.toml")


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
keys = st.sampled_from(
    [
        "suite",
        "mechanisms",
        "seeds",
        "budget",
        "budget_kind",
        "profile",
        "model",
        "backend",
        "device",
        "db",
        "jobs",
        "hparams",
        "settings",
        "bogus",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, toml_values, max_size=6))
def test_any_mapping_loads_or_is_a_config_error(raw):
    try:
        parse_run_config(raw)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_load_or_are_a_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "run.toml"
    path.write_bytes(data)
    try:
        load_run_config(path)
    except ConfigError:
        pass
