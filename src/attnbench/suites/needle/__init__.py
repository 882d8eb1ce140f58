"""Needle in a haystack (RULER NIAH): values hidden at a depth of a long context, read back.

The generator (`data`), RULER's scoring (`metrics`) and the suite with its from-scratch and
pretrained modes (`suite`). Importing this package stays torch-free.
"""

from attnbench.suites.needle.metrics import string_match_all, string_match_part
from attnbench.suites.needle.suite import NeedleSuite

SUITE = NeedleSuite()

__all__ = ["SUITE", "NeedleSuite", "string_match_all", "string_match_part"]
