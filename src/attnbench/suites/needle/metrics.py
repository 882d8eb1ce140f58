"""RULER's scoring for NIAH and the other synthetic tasks (NVIDIA/RULER `scripts/eval/`).

Both metrics score on RULER's scale, 0-100 rounded to 2 decimals, and match a reference when it is a
case-insensitive substring of the prediction:

* `string_match_all` (niah, variable tracking, cwe, fwe): per example, the fraction of its
  references found; averaged over examples. A multi-value needle found half-way scores 50 for that
  example.
* `string_match_part` (qa): per example, 1 if any reference is found; averaged over examples.

lm-eval's `string_match_part` is not RULER's (it averages over references and takes the max over
predictions); these are RULER's. The arithmetic follows RULER's expression term by term, so the
float before rounding is the official one. RULER applies `postprocess_pred` to each prediction
before scoring; the metrics themselves do not, as in RULER.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from attnbench.errors import ConfigError

_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess_pred(text: str) -> str:
    """RULER's `evaluate.py::postprocess_pred`: strip, turn control characters into newlines,
    strip."""
    return _CONTROL.sub("\n", text.strip()).strip()


def _hits(preds: Sequence[str], refs: Sequence[Sequence[str]], metric: str) -> list[list[float]]:
    """For each example, 1.0/0.0 per reference: is it a case-insensitive substring of the
    prediction."""
    if isinstance(preds, str) or isinstance(refs, str):
        raise ConfigError(
            f"{metric}: preds and refs must be lists (of strings / of lists of strings), not a"
            " string"
        )
    preds, refs = list(preds), list(refs)
    if len(preds) != len(refs):
        raise ConfigError(f"{metric}: {len(preds)} predictions but {len(refs)} reference lists")
    if len(preds) == 0:
        raise ConfigError(f"{metric}: no predictions to score")
    hits = []
    for i, (pred, ref) in enumerate(zip(preds, refs)):
        if not isinstance(pred, str):
            raise ConfigError(f"{metric}: preds[{i}] is {type(pred).__name__}, not a string")
        # A bare string would be scored character by character; RULER's refs are always lists.
        if isinstance(ref, str) or not isinstance(ref, Iterable):
            raise ConfigError(f"{metric}: refs[{i}] must be a list of strings, got {ref!r}")
        ref = list(ref)
        if not all(isinstance(r, str) for r in ref):
            raise ConfigError(f"{metric}: refs[{i}] must be a list of strings, got {ref!r}")
        if len(ref) == 0:
            raise ConfigError(
                f"{metric}: refs[{i}] is empty; every example needs at least one reference"
            )
        lowered = pred.lower()
        hits.append([1.0 if r.lower() in lowered else 0.0 for r in ref])
    return hits


def string_match_all(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Mean over examples of the fraction of references found in the prediction, x100, 2
    decimals."""
    hits = _hits(preds, refs, "string_match_all")
    return round(sum([sum(h) / len(h) for h in hits]) / len(hits) * 100, 2)


def string_match_part(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Mean over examples of whether any reference is found in the prediction, x100, 2 decimals."""
    hits = _hits(preds, refs, "string_match_part")
    return round(sum([max(h) for h in hits]) / len(hits) * 100, 2)
