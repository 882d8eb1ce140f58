"""LongBench fixtures made offline: synthetic rows in the exact official schema for all 21 datasets
(and the 13 LongBench-E files), and a tiny random Llama with a byte-level tokenizer, which reads
Chinese and newlines.

Nothing here is real LongBench data (its sources carry their own licenses); the rows only have its
shape: the eight fields, `all_classes` for trec and lsht, "Paragraph N" / "段落N" answers, Chinese
rows for the five Chinese datasets, code for lcc and repobench-p, and LongBench-E lengths on the
bucket edges.
"""

from __future__ import annotations

import json
from pathlib import Path

from attnbench.suites.longbench.data import DATASETS, E_DATASETS
from attnbench.suites.rewardbench.smoke import SPECIAL_TOKENS
from attnbench.suites.rewardbench.smoke import byte_tokenizer as smoke_tokenizer

ZH = ("multifieldqa_zh", "dureader", "vcsum", "lsht", "passage_retrieval_zh")
E_LENGTHS = (3999, 4000, 7999, 8000)  # 0-4k | 4-8k | 4-8k | 8k+
TREC_CLASSES = [
    "Abbreviation",
    "Animal",
    "Description",
    "Entity",
    "Human being",
    "Location",
    "Numeric value",
]
LSHT_CLASSES = ["体育", "财经", "教育", "科技", "军事"]

STORY = (
    "The lighthouse keeper of Tarn Island kept a logbook for forty years. Every evening she wrote"
    " the weather, the ships that passed and the name of the bird she saw last. In the spring of"
    " the flood year the logbook records a red schooner named Perpetua that anchored for three"
    " nights. "
)
ZH_TEXT = (
    "会议讨论了产品发布计划。市场部认为应当在五月发布新产品，研发部希望推迟到七月，以便完成测试。"
    "最后大家同意六月发布。"
)
CODE = (
    "def area(width, height):\n    return width * height\n\n\ndef perimeter(width, height):\n"
    "    total = 2 * (width + height)\n"
)


def _length(row: dict, dataset: str) -> int:
    """LongBench's `length`: words (str.split) for English and code, characters for Chinese."""
    text = row["input"] + row["context"] + "".join(row["answers"])
    return len(text) if dataset in ZH else len(text.split())


def _content(dataset: str, i: int) -> tuple[str, str, list[str], str, list[str] | None]:
    """(input, context, answers, language, all_classes) of synthetic row `i`."""
    if dataset in ("narrativeqa", "qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "musique"):
        passages = STORY * (1 + i % 2)
        return (
            f"What was the name of the schooner? ({i})",
            passages,
            ["Perpetua", "the Perpetua"],
            "en",
            None,
        )
    if dataset == "triviaqa":
        shots = (
            "Passage: Paris is the capital of France.\nQuestion: What is the capital of"
            " France?\nAnswer: Paris\n\n"
        )
        return (
            f"Passage: {STORY}\nQuestion: Which island? ({i})\nAnswer:",
            shots,
            ["Tarn Island", "Tarn"],
            "en",
            None,
        )
    if dataset in ("multifieldqa_zh", "dureader"):
        return f"最后决定在几月发布？（{i}）", ZH_TEXT * (1 + i % 2), ["六月", "6月"], "zh", None
    if dataset == "vcsum":
        return "", ZH_TEXT * 2, ["会议讨论产品的发布计划，最后同意六月发布。"], "zh", None
    if dataset in ("gov_report", "multi_news"):
        return (
            "",
            STORY * 2,
            ["A lighthouse keeper logged weather, ships and birds, and a red schooner."],
            "en",
            None,
        )
    if dataset == "qmsum":
        answers = ["The weather, the ships and the last bird."]
        return f"Summarize what the keeper wrote. ({i})", STORY, answers, "en", None
    if dataset == "samsum":
        shots = (
            "Dialogue: Ann: Lunch? Bob: Sure, at noon.\nSummary: Ann and Bob will have lunch at"
            " noon.\n\n"
        )
        return (
            "Dialogue: Kim: Is the ferry late? Lee: Yes, by an hour.\nSummary:",
            shots,
            ["The ferry is an hour late."],
            "en",
            None,
        )
    if dataset == "trec":
        shots = (
            "Question: Who wrote Hamlet?\nType: Human being\nQuestion: What is a dolphin?\nType:"
            " Animal\n"
        )
        return (
            f"Question: How far is the moon? ({i})\nType:",
            shots,
            ["Numeric value"],
            "en",
            TREC_CLASSES,
        )
    if dataset == "lsht":
        shots = "新闻：球队昨晚赢得了冠军。\n类别：体育\n新闻：股市今天上涨。\n类别：财经\n"
        return f"新闻：学校开始新学期。（{i}）\n类别：", shots, ["教育"], "zh", LSHT_CLASSES
    if dataset == "passage_count":
        paragraphs = [
            "Alpha river flows north.",
            "Beta hill is green.",
            "Alpha river flows north.",
            "Gamma bay.",
        ]
        context = "\n\n".join(f"Paragraph {k + 1}: {p}" for k, p in enumerate(paragraphs))
        return "", context, ["3"], "en", None
    if dataset == "passage_retrieval_en":
        paragraphs = [
            "The keeper logged ships.",
            "A schooner anchored for three nights.",
            "Birds nest on cliffs.",
        ]
        context = "\n\n".join(f"Paragraph {k + 1}: {p}" for k, p in enumerate(paragraphs))
        return "A ship stayed at anchor for a few nights.", context, ["Paragraph 2"], "en", None
    if dataset == "passage_retrieval_zh":
        paragraphs = ["市场部希望五月发布。", "研发部希望推迟到七月。", "最后大家同意六月发布。"]
        context = "\n\n".join(f"段落{k + 1}：{p}" for k, p in enumerate(paragraphs))
        return "会议最终确定了六月发布。", context, ["段落3"], "zh", None
    if dataset == "lcc":
        return "", CODE, ["    return total"], "python", None
    if dataset == "repobench-p":
        return (
            "from shapes import area\n\nx = area(",
            "# shapes.py\n" + CODE,
            ["    3, 4)"],
            "python",
            None,
        )
    raise KeyError(dataset)


def rows(dataset: str, count: int, e_lengths: bool = False) -> list[dict]:
    out = []
    for i in range(count):
        question, context, answers, language, classes = _content(dataset, i)
        row = {
            "input": question,
            "context": context,
            "answers": answers,
            "length": 0,
            "dataset": f"{dataset}_e" if e_lengths else dataset,
            "language": language,
            "all_classes": classes,
            "_id": f"{dataset}{'-e' if e_lengths else ''}-{i:04d}",
        }
        row["length"] = E_LENGTHS[i % len(E_LENGTHS)] if e_lengths else _length(row, dataset)
        out.append(row)
    return out


def write_data(folder: Path, count: int = 2) -> Path:
    """`<name>.jsonl` for every dataset (`count` rows) and `<name>_e.jsonl` for LongBench-E (four
    rows, one length per bucket edge), as the official data.zip lays them out."""
    folder.mkdir(parents=True, exist_ok=True)
    for dataset in DATASETS:
        _write(folder / f"{dataset}.jsonl", rows(dataset, count))
    for dataset in E_DATASETS:
        _write(folder / f"{dataset}_e.jsonl", rows(dataset, len(E_LENGTHS), e_lengths=True))
    return folder


def _write(path: Path, records: list[dict]) -> None:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )


def byte_tokenizer(chat_template: str | None = None):
    """Byte-level: one token per UTF-8 byte (CJK characters are three), a BOS token in front; no
    chat template unless given (RewardBench's smoke tokenizer, which is built locally)."""
    return smoke_tokenizer(chat_template)


def save_checkpoint(folder: Path, window: int = 1024) -> Path:
    """A two-layer random Llama (4 query heads sharing 2 key/value heads) on the byte tokenizer. Its
    generation config also ends at every non-ASCII byte, so that its random answers stop after a few
    tokens and the 512-token summaries do not make the tests slow (samsum, which stops at its own
    tokens, still runs long).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=window,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    ascii_ids = set(tokenizer.encode("".join(map(chr, range(128))), add_special_tokens=False))
    high_bytes = [i for i in range(len(SPECIAL_TOKENS), len(tokenizer)) if i not in ascii_ids]
    model.generation_config.eos_token_id = [config.eos_token_id] + high_bytes
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
