"""SECOND semantic change detection as an attnbench suite: `feature_map` mechanisms in every stage of
a siamese encoder (SCanNet-style network, `model`), trained from scratch on one FLOP budget and
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
read from its files. `loss` (`ce`, SCanNet's objective, or `ce_dice`, with the CBAM + Dice paper's Dice terms) and
`decoder_attention` (the mechanism also in the decoders, where that paper puts CBAM) are task
settings, so every stored cell states them. Torch is imported only when a cell runs or a budget is
computed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.errors import ConfigError
from attnbench.suite import CellContext, Suite, Task, settings_from, task_of

DATA = ("synthetic", "second")
LOSSES = ("ce", "ce_dice")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "poly")
NORMALISATIONS = ("auto", "train", "official")
SECOND_SIZE = 512
DEFAULT_SYNTHETIC = ((512, 128), 0)  # pairs (train, val), generator seed
TUPLES = ("synthetic_pairs", "widths", "blocks", "strides")


@dataclass(frozen=True)
class SecondTask:
    data: str
    root: str | None
    layout: str
    labels: str
    normalisation: str
    image_size: int
    synthetic_pairs: tuple[int, ...] | None
    data_seed: int | None
    # the network
    stem_width: int
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    strides: tuple[int, ...]
    width: int
    cd_blocks: int
    decoder_attention: bool
    # training
    loss: str
    optimizer: str
    learning_rate: float
    weight_decay: float
    schedule: str
    batch_size: int
    augment: bool
    epochs_for_default_budget: float
    poly_power: float = 1.5

    @property
    def label(self) -> str:
        where = f"synthetic-{self.image_size}px" if self.data == "synthetic" else f"second-{self.labels}"
        return f"{where}-{self.loss}" + ("-decoder-attention" if self.decoder_attention else "")

    def as_task(self) -> Task:
        return task_of(self.label, self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SecondTask:
        return settings_from(cls, config, "SECOND", TUPLES)

    def normalised(self) -> SecondTask:
        """A root means the real SECOND (its layout found on disk unless named, its image size read from
        disk, the official per-date normalisation unless asked otherwise); synthetic data has its generated
        split and its own statistics. What the config then says is what a cell uses."""
        if self.root is not None:
            from attnbench.suites.second.data import detect_layout, measured_size

            if not isinstance(self.root, str):
                raise ConfigError(f"SECOND root={self.root!r} must be a folder path")
            layout = detect_layout(self.root) if self.layout in ("generated", "auto") else self.layout
            normalisation = "official" if self.normalisation == "auto" else self.normalisation
            return replace(self, data="second", layout=layout, normalisation=normalisation,
                           image_size=measured_size(self.root, layout) or self.image_size, synthetic_pairs=None,
                           data_seed=None)
        if self.data == "synthetic":
            return replace(self, layout="generated", labels="index",
                           normalisation="train" if self.normalisation == "auto" else self.normalisation,
                           synthetic_pairs=self.synthetic_pairs or DEFAULT_SYNTHETIC[0],
                           data_seed=DEFAULT_SYNTHETIC[1] if self.data_seed is None else self.data_seed)
        return self

    def validate(self) -> None:
        """Fail at planning time, with the setting named, not in the middle of a run."""
        from attnbench.suites.second import data

        _one_of("data", self.data, DATA)
        _one_of("layout", self.layout, ("generated",) if self.data == "synthetic" else ("auto",) + data.LAYOUTS)
        _one_of("labels", self.labels, data.ENCODINGS)
        _one_of("normalisation", self.normalisation, NORMALISATIONS)
        _one_of("loss", self.loss, LOSSES)
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("schedule", self.schedule, SCHEDULES)
        for name in ("image_size", "stem_width", "width", "cd_blocks", "batch_size"):
            _positive_int(name, getattr(self, name))
        stages = len(self.widths) if isinstance(self.widths, tuple) else 0
        for name in ("widths", "blocks", "strides"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value or len(value) != stages:
                raise ConfigError(f"SECOND {name}={value!r} must list one value per encoder stage, as widths does")
            for item in value:
                _positive_int(name, item)
        if stages < 2 or math.prod(self.strides[1:]) != 2:
            raise ConfigError(f"SECOND strides={self.strides!r}: the stages after the first must halve the "
                              f"low-level feature exactly once (e.g. (2, 2, 1)), as the decoders upsample it x2")
        step = 2 * math.prod(self.strides)
        if self.image_size % step:
            raise ConfigError(f"SECOND image_size={self.image_size} must be a multiple of {step}, the encoder's "
                              f"total stride")
        if self.width % 2:
            raise ConfigError(f"SECOND width={self.width} must be even (the change classifier halves it)")
        for name in ("learning_rate", "epochs_for_default_budget", "poly_power"):
            if not _number(getattr(self, name)) or not getattr(self, name) > 0:
                raise ConfigError(f"SECOND {name}={getattr(self, name)!r} must be a positive number")
        if not _number(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"SECOND weight_decay={self.weight_decay!r} must be a number >= 0")
        for name in ("augment", "decoder_attention"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"SECOND {name}={getattr(self, name)!r} must be true or false")
        if self.data == "synthetic":
            pairs = self.synthetic_pairs
            if (not isinstance(pairs, tuple) or len(pairs) != 2 or any(isinstance(c, bool) or not isinstance(c, int)
                                                                       or c < 1 for c in pairs)):
                raise ConfigError(f"SECOND synthetic_pairs={pairs!r} must be two pair counts (train, val), "
                                  f"each at least 1")
            if isinstance(self.data_seed, bool) or not isinstance(self.data_seed, int):
                raise ConfigError(f"SECOND data_seed={self.data_seed!r} must be an integer")
        elif self.root is None:
            return
        else:
            self.check_files()
        if self.batch_size > self.train_pairs():
            raise ConfigError(f"SECOND batch_size={self.batch_size} exceeds the {self.train_pairs()} training pairs")

    def check_files(self) -> None:
        """Every pair of both splits present with its partners, and one size for all (read from headers)."""
        from attnbench.suites.second import data

        data.check_pairs([pair for split in data.SPLITS
                          for pair in data.list_pairs(self.root, self.layout, split, self.labels)], self.labels)

    def train_pairs(self) -> int:
        if self.data == "synthetic":
            return self.synthetic_pairs[0]
        from attnbench.suites.second.data import list_pairs

        return len(list_pairs(self.root, self.layout, "train", self.labels))

    def network(self):
        from attnbench.suites.second.model import SCDConfig

        return SCDConfig(3, self.image_size, self.image_size, self.stem_width, self.widths, self.blocks,
                         self.strides, self.width, self.cd_blocks, self.decoder_attention)


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"SECOND {name}={value!r} is not one of {', '.join(allowed)}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"SECOND {name}={value!r} must be a positive integer")


SMOKE = dict(
    data="synthetic", root=None, layout="generated", labels="index", normalisation="auto", image_size=64,
    synthetic_pairs=DEFAULT_SYNTHETIC[0], data_seed=DEFAULT_SYNTHETIC[1],
    stem_width=16, widths=(16, 32, 48), blocks=(1, 1, 1), strides=(2, 2, 1), width=32, cd_blocks=1,
    decoder_attention=False,
    # Measured on 2 shared CPU cores (two cells at a time): a cell of the budget's 320 steps takes
    # 45-90 s, the whole smoke run about 5 minutes; `none` reaches SeK about 0.40 and mIoU about 0.81,
    # so mechanisms have room to differ.
    loss="ce", optimizer="adamw", learning_rate=3e-3, weight_decay=1e-4, schedule="cosine", batch_size=16,
    augment=False, epochs_for_default_budget=10,
)
PAPER = dict(
    data="second", root=None, layout="auto", labels="index", normalisation="auto", image_size=SECOND_SIZE,
    synthetic_pairs=None, data_seed=None,
    stem_width=64, widths=(64, 128, 256, 512), blocks=(3, 4, 6, 3), strides=(2, 2, 1, 1), width=128, cd_blocks=6,
    decoder_attention=False,
    loss="ce", optimizer="sgd", learning_rate=0.1, weight_decay=5e-4, schedule="poly", batch_size=8,
    augment=True, epochs_for_default_budget=50,
)
TASKS = {"smoke": SecondTask(**SMOKE), "paper": SecondTask(**PAPER)}


class SecondSuite(Suite):
    name = "second"
    description = ("SECOND semantic change detection: feature-map attention in a siamese encoder, "
                   "scored with SeK, Fscd, mIoU and OA.")
    accepts = ("feature_map",)
    groups = ("vision",)
    primary_metric = "SeK"
    higher_is_better = True
    profiles = tuple(TASKS)
    version = "1"

    def tasks(self, profile: str) -> list[Task]:
        self.check_profile(profile)
        return [TASKS[profile].normalised().as_task()]

    def make_task(self, config: Any, label: str) -> Task:
        task = SecondTask.from_config(config).normalised()
        task.validate()
        return task.as_task()

    def settings(self, profile: str) -> set[str]:
        return {f.name for f in fields(SecondTask)}

    def pairs_with(self, task: Task, mechanism: Any) -> tuple[bool, str | None]:
        if task.config["data"] == "second" and not task.config["root"]:
            return False, ("second reads the real SECOND in this profile: --set root=DIR (a folder with im1/ im2/ "
                           "label1/ label2/ and SCanNet's train_info.txt / val_info.txt, or train/ and val/ folders)")
        return True, None

    def default_seeds(self, profile: str) -> int:
        return 2 if profile == "smoke" else 3

    def default_budget(self, profile: str, task: Task) -> Budget:
        """What the network with `none` spends in `epochs_for_default_budget` epochs of the training pairs."""
        from attnbench.suites.second.model import scd_forward_flops

        spec = SecondTask.from_config(task.config)
        per_pair = 3 * scd_forward_flops(spec.network(), None, {}, batch=1)["total"]
        return Budget("flops", float(per_pair * spec.train_pairs() * spec.epochs_for_default_budget))

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        from attnbench.suites.second.train import train_and_evaluate

        task = SecondTask.from_config(cell.task_config)
        return train_and_evaluate(task, mechanism, dict(cell.hparams), cell.budget, cell.seed, ctx)
