"""From a RewardBench row to token ids: one BOS when both template and tokenizer add it, the plain format
without a template, a judge prompt whose segment spans are exact and that is cut to fit, and verdict tokens
that must be single and distinct."""
from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from attnbench.errors import ConfigError  # noqa: E402
from attnbench.suites.rewardbench.formatting import (  # noqa: E402
    JUDGE_SEGMENT,
    conversation,
    encode,
    fit,
    judge_ids,
    response_start,
    uses_chat,
    verdict_tokens,
)
from attnbench.suites.rewardbench.smoke import CHAT_TEMPLATE, byte_tokenizer  # noqa: E402


def test_a_bos_from_both_template_and_tokenizer_is_kept_once():
    tokenizer = byte_tokenizer("{{ bos_token }}" + CHAT_TEMPLATE)
    text = conversation(tokenizer, "Hi?", "Hello.", chat=True)
    assert text.startswith("<s><|user|>\nHi?\n<|assistant|>\nHello.")
    ids = encode(tokenizer, text)
    assert ids[0] == tokenizer.bos_token_id != ids[1] and tokenizer.decode(ids).count("<s>") == 1


def test_without_a_template_the_plain_format_is_read():
    tokenizer = byte_tokenizer(chat_template=None)
    assert not uses_chat(tokenizer, None)
    assert conversation(tokenizer, "Hi?", "Hello.", chat=False) == "Hi?\n\nHello."
    assert conversation(tokenizer, "Hi?", None, chat=False) == "Hi?\n\n"
    with pytest.raises(ConfigError, match="chat_template=True, but the tokenizer has no chat template"):
        uses_chat(tokenizer, True)
    prompt, full = encode(tokenizer, "Hi?\n\n"), encode(tokenizer, "Hi?\n\nHello.")
    assert response_start(prompt, full) == len(prompt) and tokenizer.decode(full[len(prompt):]) == "Hello."


def test_a_long_judge_prompt_is_cut_inside_the_responses_and_keeps_its_spans():
    tokenizer = byte_tokenizer()
    full, spans, cut = judge_ids(tokenizer, "Q?", "a" * 300, "b" * 20, True, 4096)
    blocks = [JUDGE_SEGMENT.format(label=label, response=text) for label, text in (("A", "a" * 300), ("B", "b" * 20))]
    assert not cut and [e - s for s, e in spans] == [len(b.encode()) for b in blocks]  # one token per byte
    ids, spans, cut = judge_ids(tokenizer, "Q?", "a" * 300, "b" * 20, True, len(full) - 100)
    assert cut and len(ids) == len(full) - 100
    assert ids[:spans[0][0]] == full[:spans[0][0]] and ids[spans[1][1]:] == full[-(len(ids) - spans[1][1]):]
    second = tokenizer.decode(ids[spans[1][0]:spans[1][1]])
    assert second.startswith("[Response B]\n" + "b" * 20) and second.endswith("[End of Response B]\n\n")
    assert fit([1] * 10, [2] * 50, 20) == ([1] * 10, [2] * 10) and fit([1] * 50, [2] * 3, 20) == ([1] * 17, [2] * 3)
    with pytest.raises(ConfigError, match="leaves 1 tokens for the two responses"):
        fit([1], [2, 3], 1)


def test_verdict_tokens_must_be_single_and_distinct():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = byte_tokenizer()
    assert tokenizer.convert_ids_to_tokens(list(verdict_tokens(tokenizer))) == ["A", "B"]
    backend = Tokenizer(models.WordLevel({"<unk>": 0, "[[": 1}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    blind = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")  # A and B are both unknown
    with pytest.raises(ConfigError, match="distinct tokens for 'A' and 'B'"):
        verdict_tokens(blind)
