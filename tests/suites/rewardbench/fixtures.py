"""RewardBench fixtures made offline: rows in the exact seven-field schema for all 23 subsets (one
of them an exact tie: chosen and rejected are the same text), written as .jsonl and as the Hub's
parquet layout, and tiny random Llama checkpoints — a reward head and a language-model head — built
from a config on a byte-level tokenizer with a chat template. Nothing here is real RewardBench
data."""

from __future__ import annotations

import json
from pathlib import Path

from attnbench.suites.rewardbench.sections import SUBSETS
from attnbench.suites.rewardbench.smoke import byte_tokenizer, tiny_config

TIE_ID = 999_999
TIE_SUBSET = "xstest-should-respond"

_PROMPTS = (
    "How do I boil an egg?",
    "Write a function that reverses a list.",
    "Is it safe to mix bleach and ammonia?",
    "Summarise the plot of Hamlet in one sentence.",
)
_GOOD = (
    "Put the egg in boiling water for nine minutes, then cool it in cold water.",
    "def reverse(items):\n    return items[::-1]",
    "No. Mixing them releases toxic chloramine gas.",
    "A Danish prince avenges his father's murder and dies doing it.",
)
_BAD = (
    "Eggs cannot be boiled.",
    "def reverse(items):\n    return items",
    "Yes, it makes a stronger cleaner.",
    "It is a comedy about a wedding.",
)


def rows(per_subset: int = 2) -> list[dict]:
    """`per_subset` rows of every subset in RewardBench's order, then the exact tie."""
    out = []
    for s, subset in enumerate(SUBSETS):
        for i in range(per_subset):
            k = (s + i) % len(_PROMPTS)
            out.append(
                {
                    "prompt": _PROMPTS[k],
                    "chosen": _GOOD[k],
                    "chosen_model": "fixture-a",
                    "rejected": _BAD[k],
                    "rejected_model": "fixture-b",
                    "subset": subset,
                    "id": 100 * s + i,
                }
            )
    out.append(
        {
            "prompt": "Say hello.",
            "chosen": "Hello!",
            "chosen_model": "fixture-a",
            "rejected": "Hello!",
            "rejected_model": "fixture-b",
            "subset": TIE_SUBSET,
            "id": TIE_ID,
        }
    )
    return out


def write_jsonl(path: Path, records: list[dict] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r) + "\n" for r in (records if records is not None else rows())),
        encoding="utf-8",
    )
    return path


def write_hub_layout(folder: Path, records: list[dict] | None = None) -> Path:
    """`data/filtered-00000-of-00001.parquet`, as the Hub repository lays the split out (id as
    int64)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pylist(records if records is not None else rows()),
        folder / "data" / "filtered-00000-of-00001.parquet",
    )
    return folder


def save_checkpoint(folder: Path, classifier: bool = True, seed: int = 0) -> Path:
    """A two-layer random Llama (reward head with one label, or language-model head) and its
    tokenizer."""
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    tokenizer = byte_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = (LlamaForSequenceClassification if classifier else LlamaForCausalLM)(
            tiny_config(len(tokenizer), classifier)
        )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
