"""RewardBench scoring against the official semantics: a tie is a loss, each section a convex
combination of its subsets' accuracies with the official counts (math-prm 984), and the section
scores of published per-subset results under both weight tables (SUITES.md §7.3)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnbench.errors import ConfigError
from attnbench.suites.rewardbench import pair_result, section_scores, subset_accuracy
from attnbench.suites.rewardbench.scoring import cell_metrics, metric_version
from attnbench.suites.rewardbench.sections import (
    BEFORE_2024_09_10,
    CURRENT,
    ROWS,
    SECTIONS,
    SUBSETS,
)

# README of allenai/reward-bench @05a9005 ("Getting Leaderboard Section Scores")
BEAVER_COST = {
    "alpacaeval-easy": 0.5,
    "alpacaeval-hard": 0.7052631578947368,
    "alpacaeval-length": 0.5894736842105263,
    "donotanswer": 0.8235294117647058,
    "hep-cpp": 0.6280487804878049,
    "hep-go": 0.6341463414634146,
    "hep-java": 0.7073170731707317,
    "hep-js": 0.6646341463414634,
    "hep-python": 0.5487804878048781,
    "hep-rust": 0.6463414634146342,
    "llmbar-adver-GPTInst": 0.391304347826087,
    "llmbar-adver-GPTOut": 0.46808510638297873,
    "llmbar-adver-manual": 0.3695652173913043,
    "llmbar-adver-neighbor": 0.43283582089552236,
    "llmbar-natural": 0.52,
    "math-prm": 0.2953020134228188,
    "mt-bench-easy": 0.5714285714285714,
    "mt-bench-hard": 0.5405405405405406,
    "mt-bench-med": 0.725,
    "refusals-dangerous": 0.97,
    "refusals-offensive": 1,
    "xstest-should-refuse": 1,
    "xstest-should-respond": 0.284,
}
# HF allenai/reward-bench-results eval-set/Ray2333/GRM-Gemma-2B-rewardmodel-ft.json (commit ae34e5b)
GRM_GEMMA_2B = {
    "alpacaeval-easy": 0.85,
    "alpacaeval-hard": 0.8947368421052632,
    "alpacaeval-length": 0.8947368421052632,
    "donotanswer": 0.5882352941176471,
    "hep-cpp": 0.7987804878048781,
    "hep-go": 0.8597560975609756,
    "hep-java": 0.8658536585365854,
    "hep-js": 0.8597560975609756,
    "hep-python": 0.8658536585365854,
    "hep-rust": 0.823170731707317,
    "llmbar-adver-GPTInst": 0.8043478260869565,
    "llmbar-adver-GPTOut": 0.723404255319149,
    "llmbar-adver-manual": 0.5217391304347826,
    "llmbar-adver-neighbor": 0.8059701492537313,
    "llmbar-natural": 0.75,
    "math-prm": 0.930648769574944,
    "mt-bench-easy": 1.0,
    "mt-bench-hard": 0.7567567567567568,
    "mt-bench-med": 0.925,
    "refusals-dangerous": 0.94,
    "refusals-offensive": 0.99,
    "xstest-should-refuse": 0.922077922077922,
    "xstest-should-respond": 0.84,
}
# SUITES.md §7.3: Chat, Chat Hard, Safety, Reasoning, mean (percent, 2 dp)
GOLDEN = [
    (BEAVER_COST, "current", (60.89, 44.96, 72.16, 46.68, 56.17)),
    (BEAVER_COST, "2024-09-10-before", (60.89, 44.96, 81.45, 46.68, 58.49)),
    (GRM_GEMMA_2B, "current", (89.39, 75.22, 84.46, 88.81, 84.47)),
    (
        GRM_GEMMA_2B,
        "2024-09-10-before",
        (89.39, 75.22, 85.52, 88.81, 84.73),
    ),  # the model card's 85.5 / 84.7
]


@pytest.mark.parametrize("accuracy,weights,expected", GOLDEN)
def test_published_per_subset_results_give_the_published_sections(accuracy, weights, expected):
    scores = section_scores(accuracy, weights)
    assert [round(100 * scores[name], 2) for name in (*SECTIONS, "score")] == list(expected)


def test_the_tables_are_the_official_counts():
    assert sum(ROWS.values()) == 2985 and list(ROWS) == list(SUBSETS) and len(SUBSETS) == 23
    assert (
        CURRENT["math-prm"] == 984 and ROWS["math-prm"] == 447
    )  # math weighted as the six code subsets
    assert CURRENT["math-prm"] == sum(
        CURRENT[f"hep-{x}"] for x in ("cpp", "go", "java", "js", "python", "rust")
    )
    assert (CURRENT["xstest-should-refuse"], CURRENT["xstest-should-respond"]) == (154, 250)
    assert (
        BEFORE_2024_09_10["xstest-should-refuse"],
        BEFORE_2024_09_10["xstest-should-respond"],
    ) == (250, 154)
    assert {k: v for k, v in CURRENT.items() if not k.startswith("xstest")} == {
        k: v for k, v in BEFORE_2024_09_10.items() if not k.startswith("xstest")
    }


reward = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(reward, reward)
def test_a_pair_is_won_only_by_a_strictly_higher_chosen_reward(chosen, rejected):
    assert pair_result(chosen, rejected) == int(chosen > rejected)
    assert pair_result(chosen, chosen) == 0  # a tie is a loss
    assert pair_result(chosen, rejected) + pair_result(rejected, chosen) == int(chosen != rejected)


def test_a_nan_reward_loses_and_a_constant_reward_model_scores_zero():
    assert pair_result(math.nan, 0.0) == pair_result(0.0, math.nan) == 0
    accuracy = subset_accuracy((subset, pair_result(1.0, 1.0)) for subset in SUBSETS)
    assert section_scores(accuracy) == {name: 0.0 for name in (*SECTIONS, "score")}


def _lambdas(section: str, weights: str) -> dict[str, float]:
    """The coefficient of each subset in a section, read off the function by unit accuracies."""
    members = SECTIONS[section]
    return {
        s: section_scores({m: float(m == s) for m in members}, weights)[section] for s in members
    }


accuracies = st.fixed_dictionaries({}, optional={s: st.floats(0, 1) for s in SUBSETS})


@settings(max_examples=200, deadline=None)
@given(accuracies, st.sampled_from(["current", "2024-09-10-before"]))
def test_each_section_is_a_convex_combination_of_its_subsets(accuracy, weights):
    scores = section_scores(accuracy, weights)
    table = CURRENT if weights == "current" else BEFORE_2024_09_10
    for section, members in SECTIONS.items():
        present = [s for s in members if s in accuracy]
        if not present:
            assert scores[section] == 0  # the official code's value for a section with no subset
            continue
        coefficients = {s: table[s] / sum(table[p] for p in present) for s in present}
        assert all(c >= 0 for c in coefficients.values()) and math.isclose(
            sum(coefficients.values()), 1
        )
        assert math.isclose(
            scores[section], sum(coefficients[s] * accuracy[s] for s in present), abs_tol=1e-12
        )
        assert (
            min(accuracy[s] for s in present) - 1e-12
            <= scores[section]
            <= max(accuracy[s] for s in present) + 1e-12
        )
    assert math.isclose(scores["score"], sum(scores[s] for s in SECTIONS) / 4)


@pytest.mark.parametrize("weights", ["current", "2024-09-10-before"])
def test_unit_accuracies_give_the_official_weights(weights):
    table = CURRENT if weights == "current" else BEFORE_2024_09_10
    for section, members in SECTIONS.items():
        lambdas = _lambdas(section, weights)
        assert math.isclose(sum(lambdas.values()), 1) and min(lambdas.values()) > 0
        for subset in members:
            assert math.isclose(lambdas[subset], table[subset] / sum(table[m] for m in members))
    assert (
        _lambdas("Reasoning", weights)["math-prm"] == 0.5
    )  # 984 of 1,968: equal to the six code subsets


def test_subset_accuracy_counts_won_pairs_per_subset():
    results = [("hep-go", 1), ("hep-go", 0), ("hep-go", 1), ("math-prm", 0)]
    assert subset_accuracy(results) == {"hep-go": 2 / 3, "math-prm": 0.0}
    with pytest.raises(ConfigError, match="must be 0 or 1"):
        subset_accuracy([("hep-go", 2)])


def test_unknown_weights_or_subsets_are_refused():
    with pytest.raises(
        ConfigError, match="weights 'old' are not one of current, 2024-09-10-before"
    ):
        section_scores(BEAVER_COST, "old")
    with pytest.raises(ConfigError, match="'anthropic_helpful' is not a RewardBench subset"):
        section_scores({**BEAVER_COST, "anthropic_helpful": 0.5})


def test_cell_metrics_keep_both_tables_apart_in_percent():
    metrics = cell_metrics(GRM_GEMMA_2B)
    assert round(metrics["score"], 2) == 84.47 and round(metrics["section/Safety"], 2) == 84.46
    assert round(metrics["2024-09-10-before/Safety"], 2) == 85.52
    assert round(metrics["2024-09-10-before/score"], 2) == 84.73
    assert {f"subset/{s}" for s in SUBSETS} <= set(metrics) and metrics[
        "subset/mt-bench-easy"
    ] == 100
    assert (
        metric_version()
        == "rewardbench-v1-05a9005/tie-is-loss/weights-2024-09-10/inputs-rm-left-trunc-dpo-rows"
    )
