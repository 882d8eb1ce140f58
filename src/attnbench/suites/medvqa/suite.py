"""Med-VQA as an attnbench suite: `fusion` mechanisms between a question encoder and an image
encoder, trained from scratch on one FLOP budget (group `medical`).

Profiles:
* `smoke` (CPU, seconds per cell) trains a width-64 model (16 image tokens of 8x8 patches, one
  question layer, two fusion layers) on a synthetic scan-and-question set generated in memory
  (`attnbench.suites.medvqa.synthetic`; the task label says `synthetic`). With `--set data=NAME
  --set root=DIR` it reads a real data set instead.
* `paper` (GPU) reads a real data set (`--set root=DIR`, required; `data` is `vqa-rad` unless set to
  `vqa-rad-mevf`, `slake` or `vqa-med-2019`) at 224 px (196 tokens of 16x16 patches), width 256, two
  question and two fusion layers. This model is this benchmark's, not a published one: the published
  Med-VQA systems fuse pretrained encoders, and their numbers are not comparable with these.

The default budget is what the model with plain cross-attention (`cross`, the kind's reference)
spends in `epochs_for_default_budget` epochs of the training questions; every mechanism gets that
budget. Metrics: `accuracy` (primary; every test question), `closed_accuracy`, `open_accuracy`; for
VQA-Med-2019 also `strict_accuracy`, `bleu` and accuracy per category (`metrics`); `bleu_nltk=3.2`
(the default) is NLTK 3.2's arithmetic for an n-gram order without a match, which the challenge's
published BLEU needs, `3.3` NLTK's since 3.3 (`bleu`). `lenient=true` skips unusable rows (counted
in `details.skipped`) instead of refusing the data set. Torch is imported only by cells.
"""

from __future__ import annotations

from typing import Any

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.suite import CellContext, Suite, Task
from attnbench.suites.medvqa.task import TASKS, MedVQATask, train_questions


class MedVQASuite(Suite):
    name = "medvqa"
    description = (
        "Medical VQA (VQA-RAD, SLAKE, VQA-Med-2019): fusion attention between question and image."
    )
    accepts = ("fusion",)
    groups = ("medical",)
    primary_metric = "accuracy"
    higher_is_better = True
    version = "1"
    settings_class = MedVQATask
    profile_tasks = TASKS

    def pairs_with(self, task: Task, mechanism: Any) -> tuple[bool, str | None]:
        if task.config["data"] != "synthetic" and not task.config["root"]:
            return (
                False,
                (
                    f"medvqa reads {task.config['data']} in this profile: --set root=DIR "
                    "(and --set data=vqa-rad|vqa-rad-mevf|slake|vqa-med-2019)"
                ),
            )
        return True, None

    def default_seeds(self, profile: str) -> int:
        return 2 if profile == "smoke" else 3

    def mechanism_overrides(self, profile: str) -> dict[str, Any]:
        return {"num_heads": 4} if profile == "smoke" else {}  # smoke width 64: four heads of 16

    def default_budget(self, profile: str, task: Task) -> Budget:
        """What the model with `cross` spends in `epochs_for_default_budget` epochs of the
        training questions."""
        from attnbench.mechanisms import cross
        from attnbench.suites.medvqa.model import forward_flops

        spec = self.task_settings(task.config)
        questions, answers = train_questions(spec)
        hparams = cross.SPEC.hparams(profile, self.mechanism_overrides(profile))
        per_question = (
            3 * forward_flops(spec.model_config(2, answers), cross.SPEC, hparams, batch=1)["total"]
        )
        return Budget("flops", float(per_question * questions * spec.epochs_for_default_budget))

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        from attnbench.suites.medvqa.train import train_and_evaluate

        task = self.task_settings(cell.task_config)
        return train_and_evaluate(task, mechanism, dict(cell.hparams), cell.budget, cell.seed, ctx)
