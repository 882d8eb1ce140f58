"""From a RewardBench row to token ids: one BOS when both template and tokenizer add it, the plain
format without a template, a judge prompt whose segment spans are exact and that is cut to fit, and
verdict tokens that must be single and distinct."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from attnbench.errors import ConfigError  # noqa: E402
from attnbench.suites.rewardbench.formatting import (  # noqa: E402
    JUDGE_SEGMENT,
    classifier_ids,
    conversation,
    dpo_ids,
    encode,
    fit,
    judge_ids,
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


def test_a_long_reward_model_input_loses_its_start_as_run_rm_truncates_from_the_left():
    # scripts/run_rm.py sets tokenizer.truncation_side = "left": the reward head still reads the
    # response's end, and the tokenizer's BOS is kept in front of the last max_length - 1 tokens of
    # text
    tokenizer = byte_tokenizer("{{ bos_token }}" + CHAT_TEMPLATE)
    text = conversation(tokenizer, "Q" * 50, "A" * 30 + "END", chat=True)
    ids, truncated = classifier_ids(tokenizer, text, 20)
    assert truncated and len(ids) == 20 and ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids[1:]) == text[-19:] and tokenizer.decode(ids).endswith("END\n")
    assert tokenizer.truncation_side == "right"  # the tokenizer is left as it was
    short, cut = classifier_ids(tokenizer, text, 4096)  # untruncated: the doubled BOS is kept once
    assert (
        not cut and short == encode(tokenizer, text) and tokenizer.decode(short).count("<s>") == 1
    )


def test_implicit_sequences_are_built_as_dpo_py_tokenize_row_builds_them():
    tokenizer = byte_tokenizer("{{ bos_token }}" + CHAT_TEMPLATE)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    (chosen, c_start, c_cut), (rejected, r_start, r_cut) = dpo_ids(
        tokenizer, "Hi?", "Hello.", "Go.", True, 2048
    )
    prompt = tokenizer("<s><|user|>\nHi?\n", add_special_tokens=False)[
        "input_ids"
    ]  # the template's own <s> too
    answer = tokenizer("<|assistant|>\nHello.\n", add_special_tokens=False)["input_ids"]
    assert chosen == [bos] + prompt + answer + [eos]
    assert c_start == r_start == 1 + len(prompt) and not c_cut and not r_cut and rejected[-1] == eos
    assert tokenizer.decode(rejected[r_start:]) == "<|assistant|>\nGo.\n</s>"
    # too long for max_length: the prompt keeps its last 128 tokens, then each answer its first
    # max_length - 128
    (chosen, c_start, c_cut), (rejected, r_start, r_cut) = dpo_ids(
        tokenizer, "Q" * 300, "a" * 200, "b", True, 300
    )
    assert (
        c_cut
        and r_cut
        and c_start == r_start == 128
        and tokenizer.decode(chosen[:c_start]).endswith("Q\n")
    )
    assert len(chosen) == 128 + 300 - 128 and rejected == rejected[:128] + tokenizer(
        "<|assistant|>\nb\n", add_special_tokens=False
    )["input_ids"] + [eos]
    for short in (40, 100):  # below 256 the prompt and each answer get half of max_length
        for ids, start, cut in dpo_ids(tokenizer, "Q" * 300, "a" * 200, "b" * 90, True, short):
            assert cut and start == short // 2 and len(ids) <= short
    plain = byte_tokenizer(chat_template=None)
    (ids, start, _), _ = dpo_ids(plain, "Hi?", "Hello.", "Go.", False, 2048)
    assert (
        ids[0] == bos
        and plain.decode(ids[start:]) == "Hello.</s>"
        and plain.decode(ids[1:start]) == "Hi?\n\n"
    )


def test_without_a_template_the_plain_format_is_read():
    tokenizer = byte_tokenizer(chat_template=None)
    assert not uses_chat(tokenizer, None)
    assert conversation(tokenizer, "Hi?", "Hello.", chat=False) == "Hi?\n\nHello."
    assert conversation(tokenizer, "Hi?", None, chat=False) == "Hi?\n\n"
    with pytest.raises(
        ConfigError, match="chat_template=True, but the tokenizer has no chat template"
    ):
        uses_chat(tokenizer, True)


def test_a_long_judge_prompt_is_cut_inside_the_responses_and_keeps_its_spans():
    tokenizer = byte_tokenizer()
    full, spans, cut = judge_ids(tokenizer, "Q?", "a" * 300, "b" * 20, True, 4096)
    blocks = [
        JUDGE_SEGMENT.format(label=label, response=text)
        for label, text in (("A", "a" * 300), ("B", "b" * 20))
    ]
    assert not cut and [e - s for s, e in spans] == [
        len(b.encode()) for b in blocks
    ]  # one token per byte
    ids, spans, cut = judge_ids(tokenizer, "Q?", "a" * 300, "b" * 20, True, len(full) - 100)
    assert cut and len(ids) == len(full) - 100
    assert (
        ids[: spans[0][0]] == full[: spans[0][0]]
        and ids[spans[1][1] :] == full[-(len(ids) - spans[1][1]) :]
    )
    second = tokenizer.decode(ids[spans[1][0] : spans[1][1]])
    assert second.startswith("[Response B]\n" + "b" * 20) and second.endswith(
        "[End of Response B]\n\n"
    )
    assert fit([1] * 10, [2] * 50, 20) == ([1] * 10, [2] * 10) and fit([1] * 50, [2] * 3, 20) == (
        [1] * 17,
        [2] * 3,
    )
    with pytest.raises(ConfigError, match="leaves 1 tokens for the two responses"):
        fit([1], [2, 3], 1)


def test_verdict_tokens_must_be_single_and_distinct():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = byte_tokenizer()
    assert tokenizer.convert_ids_to_tokens(list(verdict_tokens(tokenizer))) == ["A", "B"]
    backend = Tokenizer(models.WordLevel({"<unk>": 0, "[[": 1}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    blind = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>"
    )  # A and B are both unknown
    with pytest.raises(ConfigError, match="distinct tokens for 'A' and 'B'"):
        verdict_tokens(blind)
