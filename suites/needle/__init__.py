"""Needle-in-a-haystack (RULER's NIAH tasks): the generator (`data`) and RULER's scoring (`metrics`)."""
from attnbench.suites.needle.metrics import string_match_all, string_match_part

__all__ = ["string_match_all", "string_match_part"]
