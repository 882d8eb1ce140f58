"""LongBench's metrics: hand vectors worked out from THUDM/LongBench metrics.py / eval.py (2e00731),
and hypothesis-generated strings checked for properties and against plain re-derivations written
here.
"""

from __future__ import annotations

import difflib
import math
import re
import string
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("rouge")
pytest.importorskip("jieba")
pytest.importorskip("fuzzywuzzy")

import jieba  # noqa: E402

from attnbench.suites.longbench import metrics  # noqa: E402
from attnbench.suites.longbench.metrics import (
    DATASET2METRIC,
    classification_score,
    code_sim_score,  # noqa: E402
    count_score,
    qa_f1_score,
    qa_f1_zh_score,
    retrieval_score,
    retrieval_zh_score,
    rouge_score,
    rouge_zh_score,
    scorer,
    scorer_e,
)

TREC = [
    "Abbreviation",
    "Animal",
    "Description",
    "Entity",
    "Human being",
    "Location",
    "Numeric value",
]

# -- hand vectors
# ---------------------------------------------------------------------------------------------


def test_hand_vectors_from_the_research_notes():
    assert qa_f1_score("The Eiffel Tower", "eiffel tower") == 1.0
    assert qa_f1_zh_score("会议讨论了产品发布计划。", "会议讨论产品的发布计划") == pytest.approx(
        5 / 6
    )
    assert rouge_zh_score("会议讨论了产品发布计划", "会议讨论产品的发布计划") == pytest.approx(
        0.83333333, abs=1e-8
    )
    assert classification_score("answer: abc", "abc", all_classes=["a", "ab", "abc"]) == 0.5
    assert count_score("There are 3 or 4 paragraphs, I think 3", "3") == pytest.approx(2 / 3)


def test_rouge_is_pltrdys_summary_level_lcs_not_rouge_score():
    # Unique words: 5 in each; the LCS "the cat on the mat" adds 4 distinct words -> R = P = 4/5
    # (rouge-score: 5/6).
    assert rouge_score("the cat sat on the mat", "the cat is on the mat") == pytest.approx(
        0.8, abs=1e-7
    )
    assert rouge_score("The cat", "the cat") == pytest.approx(0.5, abs=1e-7)  # case-sensitive


@pytest.mark.parametrize("prediction", ["", "...", ". . ."])
def test_rouge_of_an_empty_prediction_is_zero(prediction):
    assert rouge_score(prediction, "the cat sat") == 0.0
    assert rouge_zh_score(prediction, "会议讨论") == 0.0


def test_classification_skips_the_match_after_each_removed_one():
    # matches [a, ab, abc]: "a" is part of "abc" and removed, so "ab" slides into its place and is
    # never examined.
    assert classification_score("a ab abc", "abc", all_classes=["a", "ab", "abc"]) == 0.5
    assert classification_score("ab abc", "abc", all_classes=["ab", "abc"]) == 1.0
    assert classification_score("Animal", "Numeric value", all_classes=TREC) == 0.0
    assert classification_score("Human being or Animal", "Animal", all_classes=TREC) == 0.5


def test_retrieval_count_and_code_similarity():
    assert retrieval_score("Paragraph 2, not 12", "Paragraph 2") == 0.5
    assert retrieval_score("no idea", "Paragraph 2") == 0.0
    assert retrieval_zh_score("答案是段落3", "段落3") == 1.0
    assert count_score("three", "3") == 0.0
    # the first line free of ` # // is compared: "x = 1" vs "x = 2" -> difflib ratio 8/10
    assert code_sim_score("```python\n# comment\nx = 1\n", "x = 2") == 0.8
    assert code_sim_score("# only a comment", "x = 2") == 0.0
    with pytest.raises(ValueError, match="names no paragraph"):
        retrieval_score("Paragraph 1", "the first one")


def test_scorer_cuts_few_shot_predictions_to_their_first_line_and_keeps_the_best_answer():
    predictions = ["\n\nNumeric value\nAnimal", "Animal"]
    assert scorer("trec", predictions, [["Numeric value"], ["Human being"]], TREC) == 50.0
    # not cut for other datasets: the second line counts for qa_f1 on narrativeqa
    assert scorer("narrativeqa", ["\nfoo\nParis"], [["Paris"]], None) == 66.67
    assert scorer("triviaqa", ["\nfoo\nParis"], [["Paris"]], None) == 0.0
    assert scorer("hotpotqa", ["Paris", "the Rome"], [["London", "Paris"], ["rome"]], None) == 100.0
    assert scorer("qasper", ["x y z"] * 3, [["x"]] * 3, None) == 50.0
    with pytest.raises(ValueError, match="no predictions"):
        scorer("qasper", [], [], None)


def test_scorer_e_buckets_on_the_edges():
    predictions, answers = ["3", "4", "3", "4"], [["3"]] * 4
    assert scorer_e("passage_count", predictions, answers, [3999, 4000, 7999, 8000], None) == {
        "0-4k": 100.0,
        "4-8k": 50.0,
        "8k+": 0.0,
    }
    empty = scorer_e("passage_count", ["3"], [["3"]], [100], None)
    assert empty["0-4k"] == 100.0 and math.isnan(empty["4-8k"]) and math.isnan(empty["8k+"])


def test_every_dataset_has_its_official_metric():
    names = {name: fn.__name__ for name, fn in DATASET2METRIC.items()}
    assert len(names) == 21
    assert [n for n, m in names.items() if m == "qa_f1_score"] == [
        "narrativeqa",
        "qasper",
        "multifieldqa_en",
        "hotpotqa",
        "2wikimqa",
        "musique",
        "triviaqa",
    ]
    assert [n for n, m in names.items() if m == "rouge_score"] == [
        "gov_report",
        "qmsum",
        "multi_news",
        "samsum",
    ]
    assert [n for n, m in names.items() if m == "rouge_zh_score"] == ["dureader", "vcsum"]
    assert names["trec"] == names["lsht"] == "classification_score"
    assert names["lcc"] == names["repobench-p"] == "code_sim_score"


def test_the_metric_version_names_the_packages_and_the_fuzzywuzzy_backend():
    version = metrics.metric_version()
    assert version.startswith(
        "thudm-longbench@2e00731 rouge==1.0.1 jieba==0.42.1 fuzzywuzzy==0.18.0+"
    )
    assert version.endswith("+" + metrics.fuzz_backend())
    assert metrics.missing_packages() == []


# -- the recursion limit: long summaries score as under eval.py, wherever the call comes from
# ---------------

OFFICIAL_DEPTH = textwrap.dedent("""
    from rouge import Rouge

    # eval.py's depth: <module> -> scorer -> rouge_score -> get_scores
    def rouge_score(prediction, ground_truth):
        try:
            return Rouge().get_scores([prediction], [ground_truth], avg=True)["rouge-l"]["f"]
        except Exception:
            return 0.0

    def scorer(prediction, ground_truth):
        return rouge_score(prediction, ground_truth)

    for n in range(900, 1100):  # at module level, as eval.py calls scorer
        if scorer("w0", " ".join(f"w{i}" for i in range(n))) == 0.0:
            print(n)
            break
""")


def _at_depth(depth: int, fn, *args):
    return fn(*args) if depth == 0 else _at_depth(depth - 1, fn, *args)


def _first_failing(depth: int) -> int:
    # A one-word prediction against an n-word reference: pltrdy's LCS recurses about n deep, in O(n)
    # work.
    return next(
        n
        for n in range(900, 1100)
        if _at_depth(depth, rouge_score, "w0", " ".join(f"w{i}" for i in range(n))) == 0.0
    )


def test_a_sentence_near_the_recursion_limit_scores_as_under_eval_py_at_any_stack_depth(tmp_path):
    script = tmp_path / "eval_depth.py"  # run as `python eval.py` is
    script.write_text(OFFICIAL_DEPTH)
    official = int(
        subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, check=True
        ).stdout
    )
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # a process that raised its limit must not score differently
    try:
        assert [_first_failing(depth) for depth in (0, 300)] == [official, official]
    finally:
        sys.setrecursionlimit(previous)
    assert sys.getrecursionlimit() == previous


# -- hypothesis: properties and plain re-derivations
# ----------------------------------------------------------

WORDS = st.sampled_from(
    [
        "the",
        "a",
        "an",
        "The",
        "cat",
        "Cat",
        "sat",
        "on",
        "mat",
        "Paris",
        "3",
        "12",
        "x=1",
        "an.",
        "cat,",
        "(mat)",
        "",
        " ",
        "\n",
        "#",
        "//",
        "`",
        ".",
        "Paragraph 2",
        "段落3",
    ]
)
TEXT = st.lists(WORDS, max_size=12).map(" ".join) | st.text(max_size=30)
ZH_TEXT = st.lists(
    st.sampled_from(
        ["会议", "讨论", "了", "产品", "发布", "计划", "。", "，", "六月", "A", " ", "！"]
    ),
    max_size=10,
).map("".join)


def plain_qa_f1(prediction: str, truth: str) -> float:
    def normalize(s: str) -> list[str]:
        s = "".join(c for c in s.lower() if c not in string.punctuation)
        return re.sub(r"\b(a|an|the)\b", " ", s).split()

    p, t = normalize(prediction), normalize(truth)
    same = sum((Counter(p) & Counter(t)).values())
    return 0.0 if same == 0 else 2 * same / (len(p) + len(t))


@settings(max_examples=200, deadline=None)
@given(TEXT, TEXT)
def test_qa_f1_matches_a_re_derivation_and_is_symmetric(prediction, truth):
    score = qa_f1_score(prediction, truth)
    assert score == pytest.approx(plain_qa_f1(prediction, truth), abs=1e-12)
    assert score == pytest.approx(qa_f1_score(truth, prediction), abs=1e-12)
    assert 0.0 <= score <= 1.0


@settings(max_examples=100, deadline=None)
@given(ZH_TEXT, ZH_TEXT)
def test_qa_f1_zh_matches_jieba_tokens_without_punctuation(prediction, truth):
    punctuation = set(string.punctuation + metrics.CJK_PUNCTUATION)

    def tokens(s: str) -> list[str]:
        cleaned = (
            "".join("".join(c for c in w.lower() if c not in punctuation).split())
            for w in jieba.cut(s)
        )
        return [w for w in cleaned if w]

    p, t = tokens(prediction), tokens(truth)
    same = sum((Counter(p) & Counter(t)).values())
    expected = 0.0 if same == 0 else 2 * same / (len(p) + len(t))
    assert qa_f1_zh_score(prediction, truth) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(TEXT, TEXT, ZH_TEXT, ZH_TEXT)
def test_rouge_scores_are_bounded_and_zh_is_rouge_over_jieba_words(
    prediction, truth, zh_prediction, zh_truth
):
    assert 0.0 <= rouge_score(prediction, truth) <= 1.0
    if any(c not in ". \n\t" for c in prediction):
        assert rouge_score(prediction, prediction) == pytest.approx(1.0, abs=1e-7)
    joined = rouge_score(" ".join(jieba.cut(zh_prediction)), " ".join(jieba.cut(zh_truth)))
    assert rouge_zh_score(zh_prediction, zh_truth) == joined


CLASSES = st.lists(st.text(alphabet="ab", min_size=1, max_size=3), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    CLASSES, st.text(alphabet="ab ", max_size=12), st.text(alphabet="ab", min_size=1, max_size=3)
)
def test_classification_matches_the_remove_while_iterating_loop(classes, prediction, truth):
    matched = [c for c in classes if c in prediction]
    for name in matched:  # metrics.py's loop, quirk and all
        if name in truth and name != truth:
            matched.remove(name)
    expected = 1.0 / len(matched) if truth in matched else 0.0
    assert classification_score(prediction, truth, all_classes=classes) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.integers(0, 40).map(str) | st.sampled_from(["Paragraph", "段落", " ", "x", "٣"]),
        max_size=10,
    ),
    st.integers(0, 40),
)
def test_retrieval_and_count_are_the_share_of_numbers_equal_to_the_answer(parts, answer):
    prediction = " ".join(parts)
    numbers = re.findall(r"\d+", prediction)
    expected = numbers.count(str(answer)) / len(numbers) if numbers else 0.0
    assert count_score(prediction, str(answer)) == expected
    assert retrieval_score(prediction, f"Paragraph {answer}") == expected
    assert retrieval_zh_score(prediction, f"段落{answer}") == expected


@pytest.mark.skipif(
    metrics.fuzz_backend() != "difflib", reason="python-Levenshtein is the fuzzywuzzy backend here"
)
@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, max_size=4).map("\n".join), TEXT)
def test_code_similarity_is_difflibs_ratio_of_the_first_plain_line(prediction, truth):
    lines = prediction.lstrip("\n").split("\n")
    line = next((s for s in lines if not any(mark in s for mark in ("`", "#", "//"))), "")
    if line == truth:
        expected = 100
    elif not line or not truth:
        expected = 0
    else:
        expected = round(100 * difflib.SequenceMatcher(None, line, truth).ratio())
    assert code_sim_score(prediction, truth) == expected / 100


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(TEXT, st.lists(TEXT, min_size=1, max_size=3), st.integers(0, 12_000)),
        min_size=1,
        max_size=6,
    )
)
def test_scorer_is_the_rounded_mean_of_each_rows_best_answer(rows):
    predictions, answers, lengths = map(list, zip(*rows))
    best = [
        max(qa_f1_score(p.lstrip("\n").split("\n")[0], t) for t in refs)
        for p, refs in zip(predictions, answers)
    ]
    assert scorer("triviaqa", predictions, answers, None) == round(100 * sum(best) / len(best), 2)
    buckets = scorer_e("triviaqa", predictions, answers, lengths, None)
    for name, low, high in (("0-4k", 0, 4000), ("4-8k", 4000, 8000), ("8k+", 8000, math.inf)):
        inside = [b for b, n in zip(best, lengths) if low <= n < high]
        assert (
            math.isnan(buckets[name])
            if not inside
            else buckets[name]
            == pytest.approx(round(100 * sum(inside) / len(inside), 2), abs=0.006)
        )
