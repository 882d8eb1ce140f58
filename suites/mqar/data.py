"""MQAR data: Zoology's multi-query associative recall generator, call for call.

Each example is a prefix of key-value pairs `k1 v1 k2 v2 ...` followed by the keys again as
queries at power-law distributed gaps; the label at a query is its key's value (next-token
form). The numpy calls follow `zoology/data/multiquery_ar.py` in order on a local
`RandomState(seed)`, so with `random_non_queries=False` the output is bit-for-bit Zoology's.
Zoology fills the remaining zeros from torch's *global* RNG; here a local generator seeded with
`seed` does it, which equals Zoology's output when `torch.manual_seed(seed)` is called right
before it. No global random state is read or changed.
"""
from __future__ import annotations

import numpy as np
import torch

from attnbench.errors import ConfigError

IGNORE_INDEX = -100


def check_config(vocab_size: int, num_examples: int, input_seq_len: int, power_a: float, num_kv_pairs: int) -> None:
    """Zoology's assertions as one-line errors (they also guarantee enough distinct keys and gaps)."""
    for name, value in (("vocab_size", vocab_size), ("num_examples", num_examples),
                        ("input_seq_len", input_seq_len), ("num_kv_pairs", num_kv_pairs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"MQAR {name}={value!r} must be a positive integer")
    if input_seq_len % 2:
        raise ConfigError(f"MQAR input_seq_len={input_seq_len} must be even")
    if vocab_size <= input_seq_len:
        raise ConfigError(f"MQAR vocab_size={vocab_size} must exceed input_seq_len={input_seq_len}")
    if 4 * num_kv_pairs > input_seq_len:
        raise ConfigError(f"MQAR num_kv_pairs={num_kv_pairs} does not fit: the pairs and their queries need "
                          f"4 * num_kv_pairs <= input_seq_len={input_seq_len}")
    if not power_a > 0:
        raise ConfigError(f"MQAR power_a={power_a!r} must be positive")


def query_gap_probabilities(space: int, power_a: float) -> np.ndarray:
    """p_i proportional to a * i^(a - 1), i = 1..space: the gap between a pair and its query."""
    p = power_a * np.arange(1, space + 1) ** (power_a - 1)
    return p / p.sum()


def multiquery_ar(vocab_size: int, num_examples: int, input_seq_len: int, seed: int, power_a: float = 0.01,
                  num_kv_pairs: int = 8, random_non_queries: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """`(inputs, labels)`, both int64 of shape `(num_examples, input_seq_len)`; labels are -100 off queries."""
    check_config(vocab_size, num_examples, input_seq_len, power_a, num_kv_pairs)
    rng = np.random.RandomState(seed)
    context_size = 2 * num_kv_pairs
    key_choices = np.arange(1, vocab_size // 2)
    value_choices = np.arange(vocab_size // 2, vocab_size)
    keys = np.stack([rng.choice(key_choices, replace=False, size=num_kv_pairs) for _ in range(num_examples)])
    values = np.stack([rng.choice(value_choices, replace=False, size=num_kv_pairs) for _ in range(num_examples)])

    pairs = np.zeros((num_examples, context_size), dtype=np.int64)
    pairs[:, 0::2] = keys
    pairs[:, 1::2] = values

    space = (input_seq_len - context_size) // 2
    p = query_gap_probabilities(space, power_a)
    gap_choices = np.arange(space)
    gaps = np.stack([rng.choice(gap_choices, replace=False, p=p, size=num_kv_pairs) for _ in range(num_examples)])

    queries = np.zeros((num_examples, input_seq_len - context_size + 1), dtype=np.int64)
    np.put_along_axis(queries, gaps * 2, values=keys, axis=1)
    examples = np.concatenate([pairs, queries], axis=1)
    labels = np.full((num_examples, input_seq_len + 1), IGNORE_INDEX, dtype=np.int64)
    np.put_along_axis(labels, gaps * 2 + context_size + 1, values=values, axis=1)

    inputs, targets = torch.from_numpy(examples[:, :-1].copy()), torch.from_numpy(labels[:, 1:].copy())
    if random_non_queries:
        generator = torch.Generator().manual_seed(seed)
        filler = torch.randint(vocab_size, size=inputs.shape, generator=generator)
        inputs = torch.where(inputs == 0, filler, inputs)
    return inputs, targets
