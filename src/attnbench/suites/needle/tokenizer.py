"""The word-level tokenizer the needle suite's from-scratch models read and write.

A model trained from scratch on CPU needs short sequences, so a token is a word, one digit, one
punctuation mark or a newline: a 7-digit value is 7 tokens the model copies one by one, and the
whole RULER prompt (template, noise lines, needle) is a few dozen tokens rather than hundreds of
characters. The vocabulary is closed and fixed by this module (RULER's templates, the noise line,
the built-in key words, digits, letters, punctuation), so it is the same on every machine and needs
nothing downloaded. A word outside it is spelled letter by letter, so any text encodes; decoding
puts spaces back between words but not inside a number or around a hyphen.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

from attnbench.suites.needle.data import (
    ANSWER_PREFIX,
    BUILTIN_VOCABULARY,
    NEEDLE,
    NEEDLE_TYPES,
    NOISE,
    TEMPLATE,
    Vocabulary,
    _singular,
)

PAD, UNK = "<pad>", "<unk>"
_PIECES = re.compile(r"\n|\d|[A-Za-z]+|[^\sA-Za-z\d]")
_NO_SPACE_BEFORE = set(".,:;?!-)")
_NO_SPACE_AFTER = set("-(\n")


def _template_words() -> set[str]:
    texts = [NOISE]
    for kind in NEEDLE_TYPES:
        for text in (TEMPLATE, ANSWER_PREFIX):
            texts += [
                text.format(type_needle_v=kind, context="", query=""),
                _singular(text).format(type_needle_v=kind[:-1], context="", query=""),
            ]
        texts.append(NEEDLE.format(type_needle_v=kind, key="", value=""))
    return {piece for text in texts for piece in _PIECES.findall(text)}


class WordTokenizer:
    """encode(text) -> ids, decode(ids) -> text, over a closed word vocabulary."""

    def __init__(self, vocabulary: Vocabulary = BUILTIN_VOCABULARY) -> None:
        words = _template_words() | set(vocabulary.adjectives) | set(vocabulary.nouns)
        words |= set(string.digits) | set(string.ascii_letters) | set(string.punctuation) | {"\n"}
        self.tokens = [PAD, UNK, *sorted(words)]
        self.ids = {token: index for index, token in enumerate(self.tokens)}
        self.pad_id, self.unk_id = self.ids[PAD], self.ids[UNK]

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in _PIECES.findall(text):
            if piece in self.ids:
                ids.append(self.ids[piece])
            else:  # a word outside the vocabulary, letter by letter; any other symbol is unknown
                ids.extend(self.ids.get(char, self.unk_id) for char in piece)
        return ids

    def decode(self, ids: list[int]) -> str:
        out: list[str] = []
        previous = ""
        for index in ids:
            token = self.tokens[index] if 0 <= index < len(self.tokens) else UNK
            if token == PAD:
                continue
            glue = (
                not previous
                or previous in _NO_SPACE_AFTER
                or token in _NO_SPACE_BEFORE
                or token == "\n"
                or (token.isdigit() and previous.isdigit())
            )
            out.append(token if glue else " " + token)
            previous = token
        return "".join(out)


@lru_cache(maxsize=1)
def default_tokenizer() -> WordTokenizer:
    return WordTokenizer()
