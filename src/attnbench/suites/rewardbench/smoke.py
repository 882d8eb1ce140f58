"""What the smoke profile runs offline without anything fetched: made-up rows in RewardBench's exact
schema, two per subset, and `random:tiny` — a two-layer randomly initialised Llama (a reward head or
a language-model head) on a byte-level tokenizer with a chat template, built from a config with a
fixed seed.

The smoke profile checks the whole path (chat template, mechanism installed through the attention
interface, rewards, per-pair rule, sections, store); its numbers say nothing about a mechanism's
quality.
"""

from __future__ import annotations

from typing import Any

from attnbench.suites.rewardbench.sections import SUBSETS

RANDOM_MODEL = "random:tiny"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SEEDS = {
    "model": 0,
    "reference": 1,
}  # a reference equal to the policy would make every implicit reward 0

_TOPICS = (
    "boil an egg",
    "sort a list in Python",
    "plan a picnic",
    "explain photosynthesis",
    "write a haiku",
    "compute 17 * 23",
    "reverse a string in Go",
    "store passwords safely",
)
_GOOD = (
    "Here is a careful answer: {topic} step by step, with the reasons for each step and a short"
    " check at the end."
)
_BAD = "No idea. Maybe {topic}? Ask someone else."


def synthetic_rows(per_subset: int = 2) -> list[dict[str, Any]]:
    """`per_subset` made-up rows for each of the 23 subsets, with the seven official fields."""
    rows = []
    for s, subset in enumerate(SUBSETS):
        for i in range(per_subset):
            topic = _TOPICS[(s + i) % len(_TOPICS)]
            rows.append(
                {
                    "prompt": f"How do I {topic}? ({subset} #{i})",
                    "chosen": _GOOD.format(topic=topic),
                    "chosen_model": "synthetic-good",
                    "rejected": _BAD.format(topic=topic),
                    "rejected_model": "synthetic-bad",
                    "subset": subset,
                    "id": 1000 * s + i,
                }
            )
    return rows


def byte_tokenizer(chat_template: str | None = CHAT_TEMPLATE) -> Any:
    """One token per UTF-8 byte, BOS in front, a chat template; built locally, nothing
    downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {
        token: i
        for i, token in enumerate(SPECIAL_TOKENS + sorted(pre_tokenizers.ByteLevel.alphabet()))
    }
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def tiny_config(vocab_size: int, classifier: bool) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **({"num_labels": 1} if classifier else {}),
    )


def random_model(classifier: bool, role: str = "model") -> tuple[Any, Any]:
    """(model, tokenizer): the tiny random Llama with a reward head (`classifier`) or a
    language-model head, its weights drawn from the role's fixed seed without touching the global
    generator."""
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    tokenizer = byte_tokenizer()
    config = tiny_config(len(tokenizer), classifier)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEEDS[role])
        model = (LlamaForSequenceClassification if classifier else LlamaForCausalLM)(config)
    return model.eval(), tokenizer
