"""attnbench.toolkit.pretrained: load from a checkpoint folder or the local cache only, install a
mechanism, greedy text."""

from __future__ import annotations

import re
import shutil
import sys
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM

from attnbench.errors import ConfigError
from attnbench.mechanism import MechanismSpec
from attnbench.mechanisms import dense
from attnbench.registry import MECHANISMS
from attnbench.toolkit.pretrained import (
    attention_key,
    greedy_generate,
    install,
    load,
    require_transformers,
)
from tests.support.tiny import save_checkpoint

PROMPTS = ["the key is 42. what is the key?", "a"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline, so no test can reach or read a real one."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path / "hf" / "hub"


def test_load_a_checkpoint_folder(checkpoint):
    model, tokenizer = load(str(checkpoint))
    assert not model.training and model.dtype == torch.float32 and model.device.type == "cpu"
    assert (
        tokenizer.decode(tokenizer("the key")["input_ids"], skip_special_tokens=True) == "the key"
    )
    half, _ = load(str(checkpoint), dtype="bfloat16")
    assert half.dtype == torch.bfloat16


@pytest.mark.parametrize(
    "ref", ["./no-such-model", "~/no-such-model-attnbench", "/no/such/model", "models/no/model"]
)
def test_a_missing_local_path_says_so(ref):
    with pytest.raises(ConfigError, match=re.escape(f"model path {ref} does not exist")):
        load(ref)


def test_a_folder_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(ConfigError, match="has no config.json"):
        load(str(tmp_path))


def test_a_hub_id_outside_the_local_cache_says_how_to_fetch_it(empty_hub):
    with pytest.raises(
        ConfigError, match="neither a local folder nor in the local Hugging Face cache"
    ) as error:
        load("attnbench-tests/absent-model")
    assert "`hf download attnbench-tests/absent-model`" in str(error.value)
    assert "huggingface-cli download attnbench-tests/absent-model" in str(error.value)
    assert str(empty_hub) in str(error.value)


def test_a_hub_id_in_the_local_cache_loads_offline(checkpoint, empty_hub):
    snapshot = empty_hub / "models--attnbench-tests--tiny" / "snapshots" / "0123abcd"
    shutil.copytree(checkpoint, snapshot)
    (empty_hub / "models--attnbench-tests--tiny" / "refs").mkdir()
    (empty_hub / "models--attnbench-tests--tiny" / "refs" / "main").write_text("0123abcd")
    model, _ = load("attnbench-tests/tiny")
    assert model.config.num_hidden_layers == 2


def test_an_unknown_dtype_is_refused(checkpoint):
    with pytest.raises(ConfigError, match="dtype 'float8' is not one of"):
        load(str(checkpoint), dtype="float8")


def test_without_transformers_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ConfigError, match=r"pip install 'attnbench\[pretrained\]'"):
        require_transformers()


def test_only_pretrained_mechanisms_install(checkpoint):
    model, _ = load(str(checkpoint))
    with pytest.raises(ConfigError, match="'mha' is of kind 'sequence'"):
        install(model, MECHANISMS.get("mha"), {})


def test_a_model_that_ignores_the_attention_interface_is_refused():
    # as transformers leaves a model whose layers call their attention directly
    class OwnAttentionModel:
        config = SimpleNamespace(_attn_implementation="eager")

        def set_attn_implementation(self, key):
            pass

    with pytest.raises(
        ConfigError,
        match="does not dispatch its attention through transformers' AttentionInterface",
    ):
        install(OwnAttentionModel(), MECHANISMS.get("dense"), {})


def test_each_configuration_gets_its_own_key(checkpoint):
    streaming = MECHANISMS.get("streaming")
    first, second = (
        attention_key(streaming, {"window": 8}),
        attention_key(streaming, {"window": 16}),
    )
    assert first != second and first == attention_key(streaming, {"window": 8})
    assert first.startswith("attnbench_streaming_") and "/" not in first
    model, _ = load(str(checkpoint))
    assert (
        install(model, streaming, {"num_sinks": 4, "window": 8})
        == model.config._attn_implementation
    )


def test_dense_generates_the_text_of_the_models_own_sdpa(checkpoint):
    calls = []

    def counting_dense(**hparams):
        attention = dense.build(**hparams)

        def counted(*args, **kwargs):
            calls.append(1)
            return attention(*args, **kwargs)

        return counted

    counting = MechanismSpec(
        name="counting_dense",
        kind="pretrained",
        description="",
        paper="",
        build=counting_dense,
        flops=dense.flops,
    )
    model, tokenizer = load(str(checkpoint))
    install(model, counting, {})
    installed = greedy_generate(model, tokenizer, PROMPTS, max_new_tokens=12, stop_at_eos=False)
    own = AutoModelForCausalLM.from_pretrained(
        checkpoint, attn_implementation="sdpa", local_files_only=True
    ).eval()
    assert installed == greedy_generate(
        own, tokenizer, PROMPTS, max_new_tokens=12, stop_at_eos=False
    )
    assert calls, "the installed attention function was never called"
    assert all(
        0 < len(text) <= 12 for text in installed
    )  # the continuation only, one character a token


def test_generation_stops_at_the_models_end_of_sequence(checkpoint):
    model, tokenizer = load(str(checkpoint))
    full = greedy_generate(model, tokenizer, PROMPTS[:1], max_new_tokens=8, stop_at_eos=False)[0]
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(
        full[1]
    )  # the 2nd token ends it
    stopped = greedy_generate(model, tokenizer, PROMPTS[:1], max_new_tokens=8)[0]
    assert stopped == full[: full.index(full[1]) + 1] and len(full) == 8
