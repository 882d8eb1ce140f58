"""SECOND semantic change detection as an attnbench suite: `feature_map` mechanisms in every stage
of a siamese encoder (SCanNet-style network, `model`), trained from scratch on one FLOP budget and
scored with the official OA, mIoU, SeK, Fscd and Score (`metrics`).

The default budget is what the network with no mechanism (`none`) spends in
`epochs_for_default_budget` epochs of the training pairs, so every mechanism of a task trains on the
same compute.

Profiles:
* `smoke` (CPU, about a minute a cell) trains a 3-stage encoder (16/32/48 channels, width 32) on
  a synthetic, SECOND-like set of 512 + 128 pairs of 64x64 images generated in memory
  (`attnbench.suites.second.synthetic`; the task label says `synthetic`). It tests that every
  mechanism trains and ranks them at smoke scale, and says nothing about aerial imagery. With
  `--set root=DIR` it reads the real SECOND instead.
* `paper` (GPU) is SCanNet's setting on the real data (`--set root=DIR`, required): ResNet-34's
  stages (3/4/6/3 blocks, 64-512 channels, low-level feature at 1/4, the rest at 1/8), width 128,
  six change blocks, SGD (Nesterov, momentum 0.9) at lr 0.1 with weight decay 5e-4 and SCanNet's
  poly decay (power 1.5), batch 8, random flips and right-angle rotations, 50 epochs of the 2,375
  training pairs for the `none` budget, scored on the 593 validation pairs, the evaluation set of
  SCanNet's and Bi-SRNet's papers. Unlike SCanNet, the encoder is not ImageNet-pretrained.

Real data settings: `root`, `layout` (`lists` or `folders`, found on disk unless set), `labels`
(`index` maps in label1/ label2/ or `rgb` colour maps in label1_rgb/ label2_rgb/) and
`normalisation` (`official`, SCanNet's per-date statistics, or `train`, the training split's per
date; by default official for the real data, train for synthetic). The image size of real data is
read from its files. `loss` (`ce`, SCanNet's objective, or `ce_dice`, with the CBAM + Dice paper's
Dice terms) and `decoder_attention` (the mechanism also in the decoders, where that paper puts CBAM)
are task settings, so every stored cell states them. Torch is imported only when a cell runs or a
budget is computed.
"""

from __future__ import annotations

from typing import Any

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.suite import CellContext, Suite, Task
from attnbench.suites.second.task import TASKS, SecondTask


class SecondSuite(Suite):
    name = "second"
    description = (
        "SECOND semantic change detection: feature-map attention in a siamese encoder, "
        "scored with SeK, Fscd, mIoU and OA."
    )
    accepts = ("feature_map",)
    groups = ("vision",)
    primary_metric = "SeK"
    higher_is_better = True
    version = "1"
    settings_class = SecondTask
    profile_tasks = TASKS

    def pairs_with(self, task: Task, mechanism: Any) -> tuple[bool, str | None]:
        if task.config["data"] == "second" and not task.config["root"]:
            return (
                False,
                (
                    "second reads the real SECOND in this profile: --set root=DIR (a folder with"
                    " im1/ im2/ label1/ label2/ and SCanNet's train_info.txt / val_info.txt, or"
                    " train/ and val/ folders)"
                ),
            )
        return True, None

    def default_seeds(self, profile: str) -> int:
        return 2 if profile == "smoke" else 3

    def default_budget(self, profile: str, task: Task) -> Budget:
        """What the network with `none` spends in `epochs_for_default_budget` epochs of the
        training pairs."""
        from attnbench.suites.second.model import scd_forward_flops

        spec = self.task_settings(task.config)
        per_pair = 3 * scd_forward_flops(spec.network(), None, {}, batch=1)["total"]
        return Budget(
            "flops", float(per_pair * spec.train_pairs() * spec.epochs_for_default_budget)
        )

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        from attnbench.suites.second.train import train_and_evaluate

        task = self.task_settings(cell.task_config)
        return train_and_evaluate(task, mechanism, dict(cell.hparams), cell.budget, cell.seed, ctx)
