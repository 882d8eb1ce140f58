"""LongBench (THUDM, v1 and LongBench-E): long-context tasks read by a pretrained model.

The official data (`data`), prompts and generation rules (`prompts`), metrics (`metrics`) and the
suite (`suite`). Importing this package stays torch-free and imports none of the metric packages.
"""

from attnbench.suites.longbench.metrics import DATASET2METRIC, scorer, scorer_e
from attnbench.suites.longbench.suite import LongBenchSuite

SUITE = LongBenchSuite()

__all__ = ["DATASET2METRIC", "SUITE", "LongBenchSuite", "scorer", "scorer_e"]
