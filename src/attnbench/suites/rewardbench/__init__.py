"""RewardBench (AllenAI, v1): chosen/rejected pairs scored by a pretrained reward model or judge.

The official data (`data`), subsets and weights (`sections`), scoring (`scoring`), how a model gives
a pair its rewards (`formatting`, `rewards`), the cell (`evaluate`), the smoke profile's rows and
random model (`smoke`) and the suite (`suite`). Importing this package stays torch-free.
"""

from attnbench.suites.rewardbench.scoring import pair_result, section_scores, subset_accuracy
from attnbench.suites.rewardbench.suite import RewardBenchSuite

SUITE = RewardBenchSuite()

__all__ = ["SUITE", "RewardBenchSuite", "pair_result", "section_scores", "subset_accuracy"]
