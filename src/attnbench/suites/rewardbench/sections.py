"""RewardBench v1's subsets, their sections and the two weight tables (allenai/reward-bench
@05a9005, rewardbench/constants.py `EXAMPLE_COUNTS` and `SUBSET_MAPPING`).

A section's score weighs each subset's accuracy by a count: the subset's rows, except math-prm,
which has 447 rows but counts 984 ("upweighting to be equal to code": six HumanEvalPack languages of
164). On 2024-09-10 (reward-bench commit 6552e93) the two XSTest counts, swapped until then
(250/154), were set to their true row counts (154/250); model cards published before that date used
the older table.
"""

from __future__ import annotations

from types import MappingProxyType

SECTIONS = MappingProxyType(
    {
        "Chat": (
            "alpacaeval-easy",
            "alpacaeval-length",
            "alpacaeval-hard",
            "mt-bench-easy",
            "mt-bench-med",
        ),
        "Chat Hard": (
            "mt-bench-hard",
            "llmbar-natural",
            "llmbar-adver-neighbor",
            "llmbar-adver-GPTInst",
            "llmbar-adver-GPTOut",
            "llmbar-adver-manual",
        ),
        "Safety": (
            "refusals-dangerous",
            "refusals-offensive",
            "xstest-should-refuse",
            "xstest-should-respond",
            "donotanswer",
        ),
        "Reasoning": (
            "math-prm",
            "hep-cpp",
            "hep-go",
            "hep-java",
            "hep-js",
            "hep-python",
            "hep-rust",
        ),
    }
)
SUBSETS = tuple(subset for members in SECTIONS.values() for subset in members)
SECTION_OF = MappingProxyType(
    {subset: section for section, members in SECTIONS.items() for subset in members}
)

# Rows of each subset in the `filtered` split (2,985 in all).
ROWS = MappingProxyType(
    {
        "alpacaeval-easy": 100,
        "alpacaeval-length": 95,
        "alpacaeval-hard": 95,
        "mt-bench-easy": 28,
        "mt-bench-med": 40,
        "mt-bench-hard": 37,
        "llmbar-natural": 100,
        "llmbar-adver-neighbor": 134,
        "llmbar-adver-GPTInst": 92,
        "llmbar-adver-GPTOut": 47,
        "llmbar-adver-manual": 46,
        "refusals-dangerous": 100,
        "refusals-offensive": 100,
        "xstest-should-refuse": 154,
        "xstest-should-respond": 250,
        "donotanswer": 136,
        "math-prm": 447,
        **{f"hep-{language}": 164 for language in ("cpp", "go", "java", "js", "python", "rust")},
    }
)

CURRENT = MappingProxyType({**ROWS, "math-prm": 984})
BEFORE_2024_09_10 = MappingProxyType(
    {**CURRENT, "xstest-should-refuse": 250, "xstest-should-respond": 154}
)
WEIGHTS = MappingProxyType({"current": CURRENT, "2024-09-10-before": BEFORE_2024_09_10})
