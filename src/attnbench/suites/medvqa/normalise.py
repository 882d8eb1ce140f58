"""Answer normalisation and the answer conventions of the three data sets, stated once.

* `normalise_answer`: Unicode NFKC, lower-case, surrounding whitespace and one trailing period
  removed, inner whitespace (tabs included) collapsed to one space. Exact match after this is the
  accuracy of every Med-VQA table here; nothing else (articles, number words, synonyms) is
  rewritten.
* Closed questions: SLAKE and MEVF's VQA-RAD state `answer_type` (CLOSED also covers choice
  questions such as "left or right?"); the Hugging Face VQA-RAD and VQA-Med-2019 state none, so
  there a question is closed exactly when its normalised answer is "yes" or "no".
* VQA-Med-2019 references: `#` separates alternative correct answers, `(...)` marks an optional part
  that may be present or absent; `expand_reference` lists every accepted string (the alternative as
  written, brackets included, among them).
"""

from __future__ import annotations

import itertools
import re
import unicodedata

YES_NO = ("yes", "no")
ANSWER_TYPES = ("CLOSED", "OPEN")
_SPACES = re.compile(r"\s+")
_OPTIONAL = re.compile(r"\(([^()]*)\)")


def normalise_answer(text: str) -> str:
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", str(text)).lower()).strip()
    return text[:-1].rstrip() if text.endswith(".") else text


def is_yes_no(answer: str) -> bool:
    return normalise_answer(answer) in YES_NO


def answer_type_of(stated: object, answer: str) -> str | None:
    """CLOSED or OPEN from a stated type (case and spaces ignored), derived from a yes/no answer
    when none is stated; None when a type is stated but unknown."""
    if stated is None:
        return "CLOSED" if is_yes_no(answer) else "OPEN"
    value = str(stated).strip().upper()
    return value if value in ANSWER_TYPES else None


def expand_reference(reference: str) -> list[str]:
    """Every normalised answer a VQA-Med-2019 reference accepts: each `#` alternative as written,
    then with each `(...)` part kept (without its brackets) or dropped. `(angioinvasive
    aspergillosis with) septic cerebral emboli` accepts all three readings. The alternative as
    written comes first: brackets are also part of class names (the modality classes "ct w/contrast
    (iv)", "mr - adc map (app diff coeff)", ... of README-VQA-Med-2019-Data.txt), so a classifier's
    literal answer must match."""
    accepted: list[str] = []
    for alternative in reference.split("#"):
        parts = _OPTIONAL.split(alternative)  # even indices: fixed text, odd: optional parts
        optional = parts[1::2]
        readings = [alternative] if optional else []
        for keep in itertools.product((True, False), repeat=len(optional)):
            pieces = [parts[0]]
            for kept, part, after in zip(keep, optional, parts[2::2]):
                pieces += [part if kept else " ", after]
            readings.append("".join(pieces))
        for reading in readings:
            text = normalise_answer(reading)
            if text and text not in accepted:
                accepted.append(text)
    return accepted
