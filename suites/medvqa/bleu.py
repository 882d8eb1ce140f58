"""BLEU as the ImageCLEF VQA-Med evaluators compute it, with no NLTK data.

The recipe (AIcrowd VQA-Med evaluator; SUITES.md 6.3): lower-case, delete `string.punctuation`, word-
tokenise, drop NLTK's English stop words, Snowball-stem, then NLTK's `sentence_bleu([reference],
candidate)` with no smoothing (method0) and the default 4-gram weights; a pair whose token lists are
both empty scores 1; a reference with `#` alternatives scores the best alternative.

Here: the tokenizer is a regex (`_WORDS` after punctuation removal), which on punctuation-free ASCII text
gives what NLTK's word tokenizer gives (it splits on spaces and splits the few contractions it knows,
"cannot" -> "can not"); NLTK's tokenizer needs the punkt data, this does not. The stop words are shipped
(`stopwords.ENGLISH`). The stemmer is NLTK's Snowball English stemmer, pure code with no data, imported
only when BLEU is computed (`stemmer="none"` skips stemming, and is recorded as a different metric
version). `sentence_bleu` below reproduces NLTK's arithmetic: clipped n-gram precisions, the closest
reference length for the brevity penalty, 0 when no unigram matches, and method0's tiny stand-in
(`sys.float_info.min`) for a higher-order precision of zero - so a correct answer of one to three tokens
scores about 1e-231, not 1, exactly as the NLTK call does.
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
WEIGHTS = (0.25, 0.25, 0.25, 0.25)
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_WORDS = re.compile(r"\S+")
# NLTK's word tokenizer splits these words even without punctuation (its CONTRACTIONS2 list).
_SPLIT = {"cannot": ("can", "not"), "gimme": ("gim", "me"), "gonna": ("gon", "na"), "gotta": ("got", "ta"),
          "lemme": ("lem", "me"), "wanna": ("wan", "na")}


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
        raise ConfigError("VQA-Med BLEU stems with NLTK's Snowball stemmer (pure code, no data download): "
                          "pip install nltk, or --set bleu_stemmer=none") from None
    return SnowballStemmer("english")


def answer_tokens(text: str, stemmer: str = "snowball") -> list[str]:
    """The tokens BLEU compares: tokenised, stop words dropped, stemmed."""
    if stemmer not in STEMMERS:
        raise ConfigError(f"BLEU stemmer {stemmer!r} is not one of {', '.join(STEMMERS)}")
    tokens = [t for t in tokenize(text) if t not in ENGLISH]
    return [snowball_stemmer().stem(t) for t in tokens] if stemmer == "snowball" else tokens


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(references: Sequence[Sequence[str]], hypothesis: Sequence[str]) -> float:
    """NLTK's `sentence_bleu(references, hypothesis)` with default weights and no smoothing."""
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
    logs = (w * math.log(num / den if num else sys.float_info.min)
            for w, num, den in zip(WEIGHTS, numerators, denominators))
    return penalty * math.exp(math.fsum(logs))


def vqa_med_bleu(prediction: str, reference: str, stemmer: str = "snowball") -> float:
    """One item's BLEU: the best over the reference's accepted answers (`#` alternatives, `(...)` optional)."""
    candidate = answer_tokens(prediction, stemmer)
    best = 0.0
    for accepted in expand_reference(reference) or [""]:
        truth = answer_tokens(accepted, stemmer)
        score = 1.0 if not truth and not candidate else sentence_bleu([truth], candidate)
        best = max(best, score)
    return best
