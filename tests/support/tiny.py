"""A tiny random Llama and a character-level tokenizer, saved as a real checkpoint folder
(nothing downloaded)."""

from __future__ import annotations

import string
from pathlib import Path

import torch

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARACTERS = string.ascii_lowercase + string.digits + " .,:?"


def char_tokenizer():
    """One token per character, a BOS token in front, decoding that joins characters back without
    spaces."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + list(CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def tiny_llama(seed: int = 0, layers: int = 2):
    """Hidden 64, 4 query heads sharing 2 key/value heads, vocabulary of the character tokenizer,
    on SDPA."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(SPECIAL_TOKENS) + len(CHARACTERS),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.set_attn_implementation("sdpa")
    return model.eval()


def qkv(batch: int, q_len: int, kv_len: int, dtype: torch.dtype = torch.float64, seed: int = 0):
    """Random query (B, 4, Lq, 16) and key, value (B, 2, Lk, 16): the tiny Llama's head layout."""
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, 4, q_len, 16, generator=generator, dtype=dtype)
    key, value = torch.randn(2, batch, 2, kv_len, 16, generator=generator, dtype=dtype)
    return query, key, value


def save_checkpoint(folder: Path) -> Path:
    tiny_llama().save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    return folder
