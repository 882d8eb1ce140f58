"""EuroSAT land-cover classification as an attnbench suite: `feature_map` mechanisms in a residual
CNN, `sequence` mechanisms as the token mixer of a small ViT, both trained from scratch on one FLOP
budget.

Every task comes twice, once per backbone (`-cnn`, `-vit`), with the same default budget: what the
CNN with no mechanism (`none`) spends in `epochs_for_default_budget` epochs. So one leaderboard
table ranks both families at equal training compute.

Profiles:
* `smoke` (CPU, seconds per cell) trains a 3-stage CNN (16/32/64 channels) and a 2-layer ViT
  (width 64) on a synthetic, EuroSAT-like set of 32x32 textures generated in memory
  (`attnbench.suites.eurosat.synthetic`; the task label says `synthetic`): it tests that every
  mechanism trains and ranks them at smoke scale, and says nothing about satellite imagery.
  With `--set root=DIR` it reads the real EuroSAT instead.
* `paper` (GPU) is the balanced-attention paper's setting: the authors' 12-layer CNN on the real
  RGB EuroSAT (`--set root=DIR`, required), their random 70/15/15 split (seed 42), AdamW lr 1e-3,
  weight decay 0.05, batch 64, cosine warm restarts (15 epochs, x2), their class weights, flips
  and right-angle rotations, 80 epochs for the `none` budget (2.84e16 FLOPs); the ViT is
  DeiT-Tiny-sized (width 192, 12 layers, MLP x4) on 4x4 patches (256 tokens): 3.3 GFLOPs an image
  with mha against the CNN's 6.3, so attention is a real share of its cost.

Every result's config states its data and split: the root, the bands, `split` (`official` =
torchgeo's lists, `random` with `split_ratios` and `split_seed`, or `generated` for synthetic data).
Torch is imported only when a cell runs or a budget is computed.
"""

from __future__ import annotations

from typing import Any

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.suite import CellContext, Suite, Task
from attnbench.suites.eurosat.task import BACKBONES, TASKS, EuroSATTask


class EuroSATSuite(Suite):
    name = "eurosat"
    description = (
        "EuroSAT land-cover classification: feature-map attention in a CNN, sequence attention in a"
        " ViT."
    )
    accepts = ("feature_map", "sequence")
    groups = ("vision",)
    primary_metric = "accuracy"
    higher_is_better = True
    version = "1"
    settings_class = EuroSATTask
    profile_tasks = TASKS
    fixed_settings = frozenset({"backbone"})  # each task is one backbone; both run

    def pairs_with(self, task: Task, mechanism: Any) -> tuple[bool, str | None]:
        if BACKBONES[task.config["backbone"]] != mechanism.kind:
            return False, None
        if task.config["data"] == "eurosat" and not task.config["root"]:
            return (
                False,
                (
                    "eurosat reads the real EuroSAT in this profile: --set root=DIR (`attnbench"
                    " data eurosat --root DIR` checks a folder or says how to get the data)"
                ),
            )
        if mechanism.kind == "sequence" and not mechanism.supports_bidirectional:
            return (
                False,
                (
                    f"eurosat skips {mechanism.name}: its ViT mixes image patches in both"
                    f" directions and {mechanism.name} is causal-only"
                ),
            )
        return True, None

    def default_seeds(self, profile: str) -> int:
        return 2 if profile == "smoke" else 3

    def mechanism_overrides(self, profile: str) -> dict[str, Any]:
        return (
            {"num_heads": 4} if profile == "smoke" else {}
        )  # smoke ViT width 64: four heads of 16

    def default_budget(self, profile: str, task: Task) -> Budget:
        """What the CNN with no mechanism (`none`) spends in `epochs_for_default_budget` epochs of
        the training split; the ViT task gets the same budget, so both backbones share one table."""
        from attnbench.suites.eurosat.model import cnn_forward_flops

        spec = self.task_settings(task.config)
        per_image = 3 * cnn_forward_flops(spec.cnn_config(), None, {}, batch=1)["total"]
        return Budget(
            "flops", float(per_image * spec.train_images() * spec.epochs_for_default_budget)
        )

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        from attnbench.suites.eurosat.train import train_and_evaluate

        task = self.task_settings(cell.task_config)
        return train_and_evaluate(task, mechanism, dict(cell.hparams), cell.budget, cell.seed, ctx)
