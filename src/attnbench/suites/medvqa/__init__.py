"""Medical VQA (VQA-RAD, SLAKE, VQA-Med-2019): the suite of the `fusion` mechanism kind (group
`medical`).

Loaders for the official layouts (`loaders`, rows checked in `records`), answer conventions
(`normalise`), the metrics (`metrics`, `bleu`, `stopwords`), a synthetic stand-in for smoke runs
(`synthetic`), question and answer encoding (`text`), the model (`model`), data preparation and
training (`prepare`, `train`) and the suite (`suite`). Importing this package stays torch-free.
"""

from attnbench.suites.medvqa.suite import MedVQASuite

SUITE = MedVQASuite()

__all__ = ["SUITE", "MedVQASuite"]
