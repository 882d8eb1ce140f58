"""MQAR data: Zoology's multi-query associative recall generator, reproduced call for call.

Why our own copy: Zoology is not installable on CPU-only machines, seeds numpy's *global* RNG and
fills non-query tokens from torch's *global* RNG, and asserts instead of explaining bad
configurations. Here the numpy calls of `zoology/data/multiquery_ar.py` run in the same order on a
local `RandomState(seed)`, so the output is bit-for-bit Zoology's (checked against golden arrays in
the tests), no global random state is read or changed, and an impossible configuration raises a
one-line `ConfigError`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from attnbench.errors import ConfigError
from attnbench.toolkit.lm import IGNORE_INDEX
from attnbench.values import check_whole, is_number, is_whole

MAX_SEED = 2**32 - 1  # numpy's RandomState accepts seeds in [0, 2**32)


def check_config(
    vocab_size: int,
    num_examples: int,
    input_seq_len: int,
    power_a: float,
    num_kv_pairs: int,
    seed: int = 0,
) -> None:
    """Raise a one-line `ConfigError` naming the parameter if MQAR cannot generate this
    configuration.

    Zoology's three asserts (`input_seq_len` even, `vocab_size > input_seq_len`, `4 * num_kv_pairs
    <= input_seq_len` with one pass) plus positivity, a finite `power_a > 0` and a numpy-compatible
    seed. Zoology's asserts already imply the two other requirements of the without-replacement
    draws: `vocab_size // 2 - 1 >= num_kv_pairs` distinct keys (and values), since `vocab_size >= 4
    * num_kv_pairs + 1`, and `space = (input_seq_len - 2 * num_kv_pairs) // 2 >= num_kv_pairs`
    distinct query gaps.
    """
    for name, value in (
        ("vocab_size", vocab_size),
        ("num_examples", num_examples),
        ("input_seq_len", input_seq_len),
        ("num_kv_pairs", num_kv_pairs),
    ):
        check_whole(f"MQAR {name}", value)
    if not is_whole(seed, 0) or seed > MAX_SEED:
        raise ConfigError(f"MQAR seed={seed!r} must be an integer in [0, 2**32)")
    if not is_number(power_a) or not (power_a > 0 and math.isfinite(power_a)):
        raise ConfigError(f"MQAR power_a={power_a!r} must be a finite number > 0")
    if input_seq_len % 2:
        raise ConfigError(f"MQAR input_seq_len={input_seq_len} must be even")
    if vocab_size <= input_seq_len:
        raise ConfigError(f"MQAR vocab_size={vocab_size} must exceed input_seq_len={input_seq_len}")
    if 4 * num_kv_pairs > input_seq_len:
        raise ConfigError(
            f"MQAR num_kv_pairs={num_kv_pairs} does not fit: the pairs and their queries need "
            f"4 * num_kv_pairs <= input_seq_len={input_seq_len}"
        )


def query_gap_probabilities(space: int, power_a: float) -> np.ndarray:
    """Zoology's gap law: p_i proportional to power_a * i**(power_a - 1), i = 1..space (normalised).

    Index g of the result is the probability of gap g, which puts the query at `context_size + 2 *
    g`.
    """
    p = power_a * np.arange(1, space + 1) ** (power_a - 1)
    return p / p.sum()


def _generate(
    vocab_size: int,
    num_examples: int,
    input_seq_len: int,
    seed: int,
    power_a: float,
    num_kv_pairs: int,
    random_non_queries: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator without the configuration checks (the tests use it for Zoology's docstring
    example)."""
    rng = np.random.RandomState(seed)
    context_size = 2 * num_kv_pairs
    key_vocab_size = vocab_size // 2
    key_choices = np.arange(1, key_vocab_size)
    value_choices = np.arange(key_vocab_size, vocab_size)

    # Zoology: np.apply_along_axis(np.random.choice, 1, tiled_choices, replace=False, size=...) --
    # one call per row, in row order, all keys first, then all values. Same draws, without the (N,
    # V/2) tiles.
    keys = np.empty((num_examples, num_kv_pairs), dtype=np.int64)
    for row in range(num_examples):
        keys[row] = rng.choice(key_choices, replace=False, size=num_kv_pairs)
    values = np.empty((num_examples, num_kv_pairs), dtype=np.int64)
    for row in range(num_examples):
        values[row] = rng.choice(value_choices, replace=False, size=num_kv_pairs)

    space = (input_seq_len - context_size) // 2
    p = query_gap_probabilities(space, power_a)
    gap_choices = np.arange(space)
    gaps = np.empty((num_examples, num_kv_pairs), dtype=np.int64)
    for row in range(num_examples):
        gaps[row] = rng.choice(gap_choices, replace=False, p=p, size=num_kv_pairs)

    # Zoology builds length-(input_seq_len + 1) sequences and shifts them (inputs = examples[:,
    # :-1], labels = labels[:, 1:]); writing the shifted arrays directly gives the same tensors.
    inputs = np.zeros((num_examples, input_seq_len), dtype=np.int64)
    inputs[:, 0:context_size:2] = keys
    inputs[:, 1:context_size:2] = values
    query_positions = context_size + 2 * gaps  # at most input_seq_len - 2
    np.put_along_axis(inputs, query_positions, values=keys, axis=1)
    labels = np.full((num_examples, input_seq_len), IGNORE_INDEX, dtype=np.int64)
    np.put_along_axis(labels, query_positions, values=values, axis=1)

    inputs, targets = torch.from_numpy(inputs), torch.from_numpy(labels)
    if random_non_queries:
        generator = torch.Generator().manual_seed(seed)
        filler = torch.randint(vocab_size, inputs.shape, generator=generator)
        inputs = torch.where(inputs == 0, filler, inputs)
    return inputs, targets


def multiquery_ar(
    vocab_size: int,
    num_examples: int,
    input_seq_len: int,
    seed: int,
    power_a: float = 0.01,
    num_kv_pairs: int = 8,
    random_non_queries: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MQAR examples as `(inputs, labels)`, both int64 tensors of shape `(num_examples,
    input_seq_len)`.

    Each example starts with `num_kv_pairs` pairs `k1 v1 k2 v2 ...`: keys drawn without replacement
    from [1, vocab_size // 2), values without replacement from [vocab_size // 2, vocab_size). Every
    key then appears once more as a query at `2 * num_kv_pairs + 2 * gap`, the gaps drawn without
    replacement from `query_gap_probabilities(space, power_a)`, `space = (input_seq_len - 2 *
    num_kv_pairs) // 2`. `labels` is -100 everywhere except at each query, where it is the value
    paired with that key. All other positions hold 0, or with `random_non_queries` a token drawn
    uniformly from [0, vocab_size) -- which may be 0 again, or a key, i.e. an unscored distractor.

    Determined by `seed` (an integer in [0, 2**32)); no global random state is read or changed. With
    `random_non_queries=False` the result equals Zoology's `multiquery_ar(..., seed=seed)` bit for
    bit. Zoology draws the filler from torch's *global* RNG; here a local
    `torch.Generator().manual_seed(seed)` does, so the result equals Zoology's when
    `torch.manual_seed(seed)` is called right before Zoology's function.

    Cost: one numpy `choice` call per example and draw, as in Zoology (needed for the exact stream);
    the paper scale, 100,000 examples of length 256 over 8,192 tokens, takes about 10 s on one CPU
    core.

    Raises `ConfigError` (a `ValueError`) naming the parameter for an impossible configuration; see
    `check_config`.
    """
    check_config(vocab_size, num_examples, input_seq_len, power_a, num_kv_pairs, seed)
    return _generate(
        int(vocab_size),
        int(num_examples),
        int(input_seq_len),
        int(seed),
        float(power_a),
        int(num_kv_pairs),
        bool(random_non_queries),
    )
