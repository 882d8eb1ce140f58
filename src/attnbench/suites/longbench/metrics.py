"""LongBench's metrics with the official semantics: THUDM/LongBench `LongBench/metrics.py` and
`eval.py` (2e00731).

Each metric scores one prediction against one reference in [0, 1]; `scorer` keeps a row's best
reference, averages the rows and reports 0-100 with two decimals, and `scorer_e` does so per
LongBench-E length bucket. The packages are the official ones, because they decide the numbers:

* ROUGE-L is pltrdy's `rouge` (PyPI `rouge`): a summary-level union LCS over sentences split at ".",
  case-sensitive; Google's `rouge-score` differs, and drops CJK text altogether.
* Chinese is segmented with `jieba` (precise mode).
* Code similarity is `fuzzywuzzy.fuzz.ratio`, which runs on difflib unless python-Levenshtein is
  installed, and the two backends disagree on some pairs. LongBench's requirements install no
  Levenshtein, so the published numbers are difflib's; `metric_version()` names the backend in use,
  and every result records it.

Quirks kept on purpose, since the published numbers include them:

* `classification_score` removes partial class matches while iterating over the same list, so the
  match after each removed one is never examined (classes a, ab, abc, reference abc, prediction
  "abc": 0.5).
* ROUGE of an empty prediction, or one made only of dots, is 0 (pltrdy raises, eval.py catches
  everything).
* pltrdy's LCS recurses once per word of a sentence pair, so a sentence of about a thousand words
  raises RecursionError, which eval.py also turns into 0. Whether it does depends on how deep the
  stack already is, so `rouge_score` gives the package exactly the recursion headroom it has under
  eval.py, wherever it is called from (never more: raising the limit would change long GovReport and
  MultiNews scores).
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import string
import sys
import warnings
from collections import Counter
from importlib import util
from typing import Any, Callable, Mapping, Sequence

from attnbench.suites.longbench.prompts import postprocess

OFFICIAL_COMMIT = "2e00731"
PACKAGES = {
    "rouge": "rouge",
    "jieba": "jieba",
    "fuzzywuzzy": "fuzzywuzzy",
}  # distribution -> module
INSTALL_HINT = "pip install 'attnbench[longbench]'"

# normalize_zh_answer's punctuation: ASCII plus this list, exactly as metrics.py has it (it lacks 《
# but has 》).
CJK_PUNCTUATION = (
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、"
    "〃》「」『』【】〔〕〖〗"
    "〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
)
_ZH_PUNCTUATION = frozenset(string.punctuation + CJK_PUNCTUATION)
_EN_PUNCTUATION = frozenset(string.punctuation)

# Nested calls left under the recursion limit where eval.py calls pltrdy's `get_scores` (`python
# eval.py`: <module> -> scorer -> rouge_score, one frame more through rouge_zh_score, Python's
# default limit of 1000), as `_calls_left` measures them there.
_OFFICIAL_CALLS_LEFT = {"en": 995, "zh": 994}


def missing_packages() -> list[str]:
    """The metric packages that are not installed (they are the `longbench` extra)."""
    return [dist for dist, module in PACKAGES.items() if util.find_spec(module) is None]


def fuzz_backend() -> str:
    """What fuzzywuzzy computes `ratio` with: the `Levenshtein` module (python-Levenshtein) when
    importable, else difflib."""
    from importlib import metadata

    if util.find_spec("Levenshtein") is None:
        return "difflib"
    try:
        return f"Levenshtein=={metadata.version('levenshtein')}"
    except metadata.PackageNotFoundError:
        return "Levenshtein"


def package_versions() -> str:
    """The metric packages in use, e.g. `rouge==1.0.1 jieba==0.42.1 fuzzywuzzy==0.18.0+difflib`."""
    from importlib import metadata

    parts = []
    for dist in PACKAGES:
        try:
            parts.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}=missing")
    parts[-1] += f"+{fuzz_backend()}"
    return " ".join(parts)


def metric_version() -> str:
    """The metric implementation, e.g. `thudm-longbench@2e00731 rouge==1.0.1 jieba==0.42.1
    fuzzywuzzy==0.18.0+difflib`, so that numbers made with other packages or backends are never
    averaged
    together."""
    return f"thudm-longbench@{OFFICIAL_COMMIT} {package_versions()}"


def _require(module: str) -> Any:
    try:
        with (
            warnings.catch_warnings()
        ):  # fuzzywuzzy warns on import that difflib is slow: it is the official backend
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as exc:
        from attnbench.errors import ConfigError

        raise ConfigError(
            f"LongBench's metrics need {module} ({exc}); install them with {INSTALL_HINT}"
        ) from None


@functools.cache
def _jieba() -> Any:
    jieba = _require("jieba")
    jieba.setLogLevel(logging.WARNING)  # not "Building prefix dict ..." on every worker's stderr
    return jieba


def _jieba_cut(text: str) -> list[str]:
    return list(_jieba().cut(text, cut_all=False))


def normalize_answer(s: str) -> str:
    """Lower case, ASCII punctuation removed, then the articles a/an/the, then runs of
    whitespace."""
    text = "".join(ch for ch in s.lower() if ch not in _EN_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def normalize_zh_answer(s: str) -> str:
    """Lower case, ASCII and CJK punctuation removed, all whitespace removed."""
    return "".join("".join(ch for ch in s.lower() if ch not in _ZH_PUNCTUATION).split())


def f1_score(prediction: Sequence[str], ground_truth: Sequence[str]) -> float:
    """Token-bag F1 (multiset overlap); 0 when nothing overlaps."""
    overlap = sum((Counter(prediction) & Counter(ground_truth)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(prediction), overlap / len(ground_truth)
    return (2 * precision * recall) / (precision + recall)


def qa_f1_score(prediction: str, ground_truth: str, **_: Any) -> float:
    return f1_score(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def qa_f1_zh_score(prediction: str, ground_truth: str, **_: Any) -> float:
    def tokens(text: str) -> list[str]:
        return [t for t in (normalize_zh_answer(token) for token in _jieba_cut(text)) if t]

    return f1_score(tokens(prediction), tokens(ground_truth))


def _calls_left() -> int:
    """Nested Python calls that still fit under the recursion limit, measured from the caller by
    recursing until RecursionError (the interpreter also counts C-level calls that no frame shows,
    so frames are not enough).
    """

    def probe(depth: int) -> int:
        try:
            return probe(depth + 1)
        except RecursionError:
            return depth

    return probe(0)


def _rouge_l(prediction: str, ground_truth: str, language: str) -> float:
    """pltrdy's ROUGE-L F1; 0 where the package raises, with eval.py's recursion headroom."""
    Rouge = _require("rouge").Rouge
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(previous - _calls_left() + _OFFICIAL_CALLS_LEFT[language])
    try:
        scores = Rouge().get_scores([prediction], [ground_truth], avg=True)
    except (
        Exception
    ):  # eval.py scores anything the package raises as 0 (empty hypothesis, RecursionError)
        return 0.0
    finally:
        sys.setrecursionlimit(previous)
    return scores["rouge-l"]["f"]


def rouge_score(prediction: str, ground_truth: str, **_: Any) -> float:
    return _rouge_l(prediction, ground_truth, "en")


def rouge_zh_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """ROUGE-L over jieba words joined by spaces."""
    return _rouge_l(" ".join(_jieba_cut(prediction)), " ".join(_jieba_cut(ground_truth)), "zh")


def classification_score(
    prediction: str, ground_truth: str, all_classes: Sequence[str] = (), **_: Any
) -> float:
    """1/k when the reference class is among the k classes named in the prediction, else 0.

    Classes that are part of the reference (but not it) are dropped from the matches, walking the
    list by position while removing from it, as metrics.py's `for ... in list: list.remove(...)`
    does: after a removal the next match slides into the current position and is skipped. `remove`
    drops the first equal entry.
    """
    matched = [name for name in all_classes if name in prediction]
    position = 0
    while position < len(matched):
        name = matched[position]
        if name in ground_truth and name != ground_truth:
            matched.remove(name)
        position += 1
    return 1.0 / len(matched) if ground_truth in matched else 0.0


def _share_equal(prediction: str, target: str) -> float:
    """The share of the numbers (runs of digits) in the prediction that equal `target`; 0 with no
    number."""
    numbers = re.findall(r"\d+", prediction)
    if not numbers:
        return 0.0
    return float(sum(number == target for number in numbers) / len(numbers))


def _paragraph_id(ground_truth: str, pattern: str, dataset: str) -> str:
    found = re.findall(pattern, ground_truth)
    if not found:
        raise ValueError(f"{dataset} answer {ground_truth!r} names no paragraph ({pattern})")
    return found[0]


def retrieval_score(prediction: str, ground_truth: str, **_: Any) -> float:
    return _share_equal(
        prediction, _paragraph_id(ground_truth, r"Paragraph (\d+)", "passage_retrieval_en")
    )


def retrieval_zh_score(prediction: str, ground_truth: str, **_: Any) -> float:
    return _share_equal(
        prediction, _paragraph_id(ground_truth, r"段落(\d+)", "passage_retrieval_zh")
    )


def count_score(prediction: str, ground_truth: str, **_: Any) -> float:
    return _share_equal(prediction, str(ground_truth))


def code_sim_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """fuzz.ratio / 100 between the reference and the prediction's first line that holds no `, #
    or //."""
    fuzz = _require("fuzzywuzzy.fuzz")
    lines = prediction.lstrip("\n").split("\n")
    line = next(
        (text for text in lines if "`" not in text and "#" not in text and "//" not in text), ""
    )
    return fuzz.ratio(line, ground_truth) / 100


DATASET2METRIC: dict[str, Callable[..., float]] = {
    "narrativeqa": qa_f1_score,
    "qasper": qa_f1_score,
    "multifieldqa_en": qa_f1_score,
    "multifieldqa_zh": qa_f1_zh_score,
    "hotpotqa": qa_f1_score,
    "2wikimqa": qa_f1_score,
    "musique": qa_f1_score,
    "dureader": rouge_zh_score,
    "gov_report": rouge_score,
    "qmsum": rouge_score,
    "multi_news": rouge_score,
    "vcsum": rouge_zh_score,
    "trec": classification_score,
    "triviaqa": qa_f1_score,
    "samsum": rouge_score,
    "lsht": classification_score,
    "passage_retrieval_en": retrieval_score,
    "passage_count": count_score,
    "passage_retrieval_zh": retrieval_zh_score,
    "lcc": code_sim_score,
    "repobench-p": code_sim_score,
}

BUCKETS = ("0-4k", "4-8k", "8k+")


def example_score(
    dataset: str, prediction: str, answers: Sequence[str], all_classes: Sequence[str] | None
) -> float:
    """One row's score in [0, 1]: eval.py's post-processing, then the best over its references."""
    prediction = postprocess(dataset, prediction)
    metric = DATASET2METRIC[dataset]
    score = 0.0
    for ground_truth in answers:
        score = max(score, metric(prediction, ground_truth, all_classes=all_classes))
    return score


def bucket(length: int) -> str:
    """LongBench-E's length bucket of a row (`length` in words, or characters for Chinese)."""
    return "0-4k" if length < 4000 else "4-8k" if length < 8000 else "8k+"


def dataset_score(scores: Sequence[float]) -> float:
    """Row scores (0-1) as eval.py reports a dataset: summed in order, averaged, 0-100 to two
    decimals."""
    total = 0.0
    for score in scores:
        total += score
    return round(100 * total / len(scores), 2)


def bucket_scores(scores: Sequence[float], lengths: Sequence[int]) -> dict[str, float]:
    """Row scores per LongBench-E bucket, as eval.py's scorer_e reports them (NaN for a bucket
    without rows)."""
    import numpy as np

    buckets: dict[str, list[float]] = {name: [] for name in BUCKETS}
    for score, length in zip(scores, lengths, strict=True):
        buckets[bucket(length)].append(score)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of an empty bucket
        # np.mean and numpy's rounding of its float64, as eval.py computes them
        return {name: float(round(100 * np.mean(values), 2)) for name, values in buckets.items()}


def overall_scores(
    metrics: Mapping[str, float], datasets: Sequence[str], variant: str
) -> dict[str, float]:
    """A cell's `score`, the plain mean of its datasets' scores (not the README's category average),
    and for LongBench-E `score/<bucket>` over the datasets with rows in that bucket; both backends
    report these.
    """
    overall = {"score": round(sum(metrics[name] for name in datasets) / len(datasets), 2)}
    if variant == "longbench_e":
        for bucket_name in BUCKETS:
            values = [
                metrics[f"{name}/{bucket_name}"]
                for name in datasets
                if f"{name}/{bucket_name}" in metrics
            ]
            if values:
                overall[f"score/{bucket_name}"] = round(sum(values) / len(values), 2)
    return overall


def scorer(
    dataset: str,
    predictions: Sequence[str],
    answers: Sequence[Sequence[str]],
    all_classes: Sequence[str] | None,
) -> float:
    """A dataset's score, 0-100 to two decimals. eval.py passes one `all_classes` for the whole file
    (its last row's); trec and lsht rows all share theirs."""
    if not predictions:
        raise ValueError(f"{dataset}: no predictions to score")
    return dataset_score(
        [
            example_score(dataset, prediction, references, all_classes)
            for prediction, references in zip(predictions, answers, strict=True)
        ]
    )


def scorer_e(
    dataset: str,
    predictions: Sequence[str],
    answers: Sequence[Sequence[str]],
    lengths: Sequence[int],
    all_classes: Sequence[str] | None,
) -> dict[str, float]:
    """LongBench-E: a dataset's score per length bucket of `length` (0-4k, 4-8k, 8k+)."""
    return bucket_scores(
        [
            example_score(dataset, prediction, references, all_classes)
            for prediction, references in zip(predictions, answers, strict=True)
        ],
        lengths,
    )
