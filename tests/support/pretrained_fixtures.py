"""Fixtures of the pretrained-kind tests (mechanisms, conformance, toolkit), offered by
tests/conftest.py."""

from __future__ import annotations

import pytest

from tests.support.tiny import tiny_llama


@pytest.fixture(scope="session")
def module():
    """A real attention layer of the tiny Llama: what transformers passes as `module` (scaling,
    kv groups)."""
    pytest.importorskip("transformers")
    return tiny_llama().model.layers[0].self_attn
