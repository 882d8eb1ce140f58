"""BLEU as the ImageCLEF VQA-Med evaluators compute it, with no NLTK data.

The recipe (AIcrowd VQA-Med evaluator; SUITES.md 6.3): lower-case, delete `string.punctuation`,
word- tokenise, drop NLTK's English stop words, Snowball-stem, then NLTK's
`sentence_bleu([reference], candidate)` with no smoothing (method0) and the default 4-gram weights;
a pair whose token lists are both empty scores 1; a reference with `#` alternatives scores the best
alternative.

Here: the tokenizer is a regex (`_WORDS` after punctuation removal), which on punctuation-free ASCII
text gives what NLTK's word tokenizer gives (it splits on spaces and splits the few contractions it
knows, "cannot" -> "can not"); NLTK's tokenizer needs the punkt data, this does not. The stop words
are shipped (`stopwords.ENGLISH`). The stemmer is NLTK's Snowball English stemmer, pure code with no
data, imported only when BLEU is computed (`stemmer="none"` skips stemming, and is recorded as a
different metric version). `sentence_bleu` below reproduces NLTK's arithmetic: clipped n-gram
precisions, the closest reference length for the brevity penalty, 0 when no unigram matches.

What "no smoothing" does with an n-gram order that has no match depends on the NLTK version, and
VQA-Med answers are one to three tokens long once stop words are gone, so it decides the score
(`NLTK`):

* `"3.2"` (the default): NLTK 3.2.2-3.2.5 (Dec 2016 - Sep 2017). method0 stops at the first order
  with no match and the orders after it are left out of the geometric mean, with their weights (not
  re-normalised): an exactly right answer of one to three tokens scores 1; "a b" for "a c" scores
  0.5 ** 0.25 = 0.84. This is the arithmetic the published VQA-Med-2019 scores need: 439 of the 500
  test references have one to three tokens after stop words (29 have more, 32 none), so under NLTK
  >= 3.3 a run answering every item exactly right scores BLEU 0.122 (checked on the reference file
  with this module), yet the published runs score BLEU at or above their strict accuracy (JUST, CEUR
  Vol-2380 paper 125, an image classifier answering with class names: 57% accuracy, 0.591 BLEU).
  Which NLTK crowdAI ran in 2019 is not documented; 3.2.2-3.2.5 is the NLTK under which the
  evaluator code as published (2018, 2020, 2021) gives a right short answer 1, and partial credit as
  computed here.
* `"3.3"`: NLTK >= 3.3 (May 2018, nltk/nltk PR #1844; the evaluator's code run today): a zero
  precision is replaced by `sys.float_info.min`, so a right answer of one to three tokens scores
  about 1e-231 (one token) or 1e-154 (two), not 1.

The 2019 evaluator's source is not public; the 2018 and 2020 ones (same recipe) are, and the 2020
one splits the reference on `#` only, leaving `(...)` to punctuation removal. Here a reference is
expanded by `normalise.expand_reference` (every `#` alternative, each `(...)` part kept or dropped)
and the best reading counts, which can score higher than splitting on `#` only when a prediction
leaves out an optional part; which of the two the 2019 evaluator did is not established.
"""

from __future__ import annotations

import math
import re
import string
import sys
from collections import Counter
from functools import lru_cache
from typing import Sequence

from attnbench.errors import ConfigError
from attnbench.suites.medvqa.normalise import expand_reference
from attnbench.suites.medvqa.stopwords import ENGLISH

STEMMERS = ("snowball", "none")
NLTK = (
    "3.2",
    "3.3",
)  # what method0 does with an n-gram order without a match: see the module docstring
WEIGHTS = (0.25, 0.25, 0.25, 0.25)
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_WORDS = re.compile(r"\S+")
# NLTK's word tokenizer splits these words even without punctuation (its CONTRACTIONS2 list).
_SPLIT = {
    "cannot": ("can", "not"),
    "gimme": ("gim", "me"),
    "gonna": ("gon", "na"),
    "gotta": ("got", "ta"),
    "lemme": ("lem", "me"),
    "wanna": ("wan", "na"),
}


def tokenize(text: str) -> list[str]:
    """Lower-cased, punctuation-free word tokens."""
    tokens: list[str] = []
    for word in _WORDS.findall(text.lower().translate(_PUNCTUATION)):
        tokens += _SPLIT.get(word, (word,))
    return tokens


@lru_cache(maxsize=1)
def snowball_stemmer():
    try:
        from nltk.stem.snowball import SnowballStemmer
    except ImportError:
        raise ConfigError(
            "VQA-Med BLEU stems with NLTK's Snowball stemmer (pure code, no data download): "
            "pip install nltk, or --set bleu_stemmer=none"
        ) from None
    return SnowballStemmer("english")


def answer_tokens(text: str, stemmer: str = "snowball") -> list[str]:
    """The tokens BLEU compares: tokenised, stop words dropped, stemmed."""
    if stemmer not in STEMMERS:
        raise ConfigError(f"BLEU stemmer {stemmer!r} is not one of {', '.join(STEMMERS)}")
    tokens = [t for t in tokenize(text) if t not in ENGLISH]
    return [snowball_stemmer().stem(t) for t in tokens] if stemmer == "snowball" else tokens


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(
    references: Sequence[Sequence[str]], hypothesis: Sequence[str], nltk: str = "3.3"
) -> float:
    """NLTK's `sentence_bleu(references, hypothesis)` with default weights and no smoothing
    (method0), with the arithmetic of NLTK >= 3.3 (`nltk="3.3"`) or of NLTK 3.2.2-3.2.5
    (`nltk="3.2"`)."""
    if nltk not in NLTK:
        raise ConfigError(f"BLEU nltk arithmetic {nltk!r} is not one of {', '.join(NLTK)}")
    numerators, denominators = [], []
    for n in range(1, len(WEIGHTS) + 1):
        counts = _ngrams(hypothesis, n)
        most = Counter()
        for reference in references:
            for gram, count in _ngrams(reference, n).items():
                most[gram] = max(most[gram], count)
        numerators.append(sum(min(count, most[gram]) for gram, count in counts.items()))
        denominators.append(max(1, sum(counts.values())))
    if numerators[0] == 0:
        return 0.0
    hyp_len = len(hypothesis)
    ref_len = min((len(r) for r in references), key=lambda length: (abs(length - hyp_len), length))
    penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    logs = []
    for weight, numerator, denominator in zip(WEIGHTS, numerators, denominators):
        if numerator:
            logs.append(weight * math.log(numerator / denominator))
        elif nltk == "3.2":
            break  # NLTK 3.2.x method0: this order and every higher one leave the mean
        else:
            logs.append(weight * math.log(sys.float_info.min))
    return penalty * math.exp(math.fsum(logs))


def vqa_med_bleu(
    prediction: str, reference: str, stemmer: str = "snowball", nltk: str = "3.2"
) -> float:
    """One item's BLEU: the best over the reference's accepted answers (`#` alternatives, `(...)`
    optional); `nltk` picks the method0 arithmetic (module docstring), "3.2" being the one the
    published scores need.
    """
    candidate = answer_tokens(prediction, stemmer)
    best = 0.0
    for accepted in expand_reference(reference) or [""]:
        truth = answer_tokens(accepted, stemmer)
        score = 1.0 if not truth and not candidate else sentence_bleu([truth], candidate, nltk)
        best = max(best, score)
    return best
