"""The SECOND suite's tasks: the settings of one task, how they are checked, and each profile's
tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from attnbench.errors import ConfigError
from attnbench.suite import TaskSettings
from attnbench.values import check_one_of, check_whole, is_number, is_whole

DATA = ("synthetic", "second")
LOSSES = ("ce", "ce_dice")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "poly")
NORMALISATIONS = ("auto", "train", "official")
SECOND_SIZE = 512
DEFAULT_SYNTHETIC = ((512, 128), 0)  # pairs (train, val), generator seed


@dataclass(frozen=True)
class SecondTask(TaskSettings):
    suite_title: ClassVar[str] = "SECOND"

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
        where = (
            f"synthetic-{self.image_size}px"
            if self.data == "synthetic"
            else f"second-{self.labels}"
        )
        return f"{where}-{self.loss}" + ("-decoder-attention" if self.decoder_attention else "")

    def normalised(self) -> SecondTask:
        """A root means the real SECOND (its layout found on disk unless named, its image size read
        from disk, the official per-date normalisation unless asked otherwise); synthetic data has
        its generated split and its own statistics. What the config then says is what a cell
        uses."""
        if self.root is not None:
            from attnbench.suites.second.data import detect_layout, measured_size

            if not isinstance(self.root, str):
                raise ConfigError(f"SECOND root={self.root!r} must be a folder path")
            layout = (
                detect_layout(self.root) if self.layout in ("generated", "auto") else self.layout
            )
            normalisation = "official" if self.normalisation == "auto" else self.normalisation
            return replace(
                self,
                data="second",
                layout=layout,
                normalisation=normalisation,
                image_size=measured_size(self.root, layout) or self.image_size,
                synthetic_pairs=None,
                data_seed=None,
            )
        if self.data == "synthetic":
            return replace(
                self,
                layout="generated",
                labels="index",
                normalisation="train" if self.normalisation == "auto" else self.normalisation,
                synthetic_pairs=self.synthetic_pairs or DEFAULT_SYNTHETIC[0],
                data_seed=DEFAULT_SYNTHETIC[1] if self.data_seed is None else self.data_seed,
            )
        return self

    def validate(self) -> None:
        """Fail at planning time, with the setting named, not in the middle of a run."""
        from attnbench.suites.second import data

        check_one_of("SECOND data", self.data, DATA)
        check_one_of(
            "SECOND layout",
            self.layout,
            ("generated",) if self.data == "synthetic" else ("auto",) + data.LAYOUTS,
        )
        check_one_of("SECOND labels", self.labels, data.ENCODINGS)
        check_one_of("SECOND normalisation", self.normalisation, NORMALISATIONS)
        check_one_of("SECOND loss", self.loss, LOSSES)
        check_one_of("SECOND optimizer", self.optimizer, OPTIMIZERS)
        check_one_of("SECOND schedule", self.schedule, SCHEDULES)
        for name in ("image_size", "stem_width", "width", "cd_blocks", "batch_size"):
            check_whole(f"SECOND {name}", getattr(self, name))
        stages = len(self.widths) if isinstance(self.widths, tuple) else 0
        for name in ("widths", "blocks", "strides"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value or len(value) != stages:
                raise ConfigError(
                    f"SECOND {name}={value!r} must list one value per encoder stage, as widths does"
                )
            for item in value:
                check_whole(f"SECOND {name}", item)
        if stages < 2 or math.prod(self.strides[1:]) != 2:
            raise ConfigError(
                f"SECOND strides={self.strides!r}: the stages after the first must halve the "
                "low-level feature exactly once (e.g. (2, 2, 1)), as the decoders upsample it x2"
            )
        step = 2 * math.prod(self.strides)
        if self.image_size % step:
            raise ConfigError(
                f"SECOND image_size={self.image_size} must be a multiple of {step}, the encoder's "
                "total stride"
            )
        if self.width % 2:
            raise ConfigError(
                f"SECOND width={self.width} must be even (the change classifier halves it)"
            )
        for name in ("learning_rate", "epochs_for_default_budget", "poly_power"):
            if not is_number(getattr(self, name)) or not getattr(self, name) > 0:
                raise ConfigError(
                    f"SECOND {name}={getattr(self, name)!r} must be a positive number"
                )
        if not is_number(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"SECOND weight_decay={self.weight_decay!r} must be a number >= 0")
        for name in ("augment", "decoder_attention"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"SECOND {name}={getattr(self, name)!r} must be true or false")
        if self.data == "synthetic":
            pairs = self.synthetic_pairs
            if (
                not isinstance(pairs, tuple)
                or len(pairs) != 2
                or any(not is_whole(c, 1) for c in pairs)
            ):
                raise ConfigError(
                    f"SECOND synthetic_pairs={pairs!r} must be two pair counts (train, val), "
                    "each at least 1"
                )
            if not is_whole(self.data_seed):
                raise ConfigError(f"SECOND data_seed={self.data_seed!r} must be an integer")
        elif self.root is None:
            return
        else:
            self.check_files()
        if self.batch_size > self.train_pairs():
            raise ConfigError(
                f"SECOND batch_size={self.batch_size} exceeds the {self.train_pairs()} training"
                " pairs"
            )

    def check_files(self) -> None:
        """Every pair of both splits present with its partners, and one size for all (read from
        headers)."""
        from attnbench.suites.second import data

        data.check_pairs(
            [
                pair
                for split in data.SPLITS
                for pair in data.list_pairs(self.root, self.layout, split, self.labels)
            ],
            self.labels,
        )

    def train_pairs(self) -> int:
        if self.data == "synthetic":
            return self.synthetic_pairs[0]
        from attnbench.suites.second.data import list_pairs

        return len(list_pairs(self.root, self.layout, "train", self.labels))

    def network(self):
        from attnbench.suites.second.model import SCDConfig

        return SCDConfig(
            3,
            self.image_size,
            self.image_size,
            self.stem_width,
            self.widths,
            self.blocks,
            self.strides,
            self.width,
            self.cd_blocks,
            self.decoder_attention,
        )


SMOKE = dict(
    data="synthetic",
    root=None,
    layout="generated",
    labels="index",
    normalisation="auto",
    image_size=64,
    synthetic_pairs=DEFAULT_SYNTHETIC[0],
    data_seed=DEFAULT_SYNTHETIC[1],
    stem_width=16,
    widths=(16, 32, 48),
    blocks=(1, 1, 1),
    strides=(2, 2, 1),
    width=32,
    cd_blocks=1,
    decoder_attention=False,
    # Measured on 2 shared CPU cores (two cells at a time): a cell of the budget's 320 steps takes
    # 45-90 s, the whole smoke run about 5 minutes; `none` reaches SeK about 0.40 and mIoU about
    # 0.81, so mechanisms have room to differ.
    loss="ce",
    optimizer="adamw",
    learning_rate=3e-3,
    weight_decay=1e-4,
    schedule="cosine",
    batch_size=16,
    augment=False,
    epochs_for_default_budget=10,
)
PAPER = dict(
    data="second",
    root=None,
    layout="auto",
    labels="index",
    normalisation="auto",
    image_size=SECOND_SIZE,
    synthetic_pairs=None,
    data_seed=None,
    stem_width=64,
    widths=(64, 128, 256, 512),
    blocks=(3, 4, 6, 3),
    strides=(2, 2, 1, 1),
    width=128,
    cd_blocks=6,
    decoder_attention=False,
    loss="ce",
    optimizer="sgd",
    learning_rate=0.1,
    weight_decay=5e-4,
    schedule="poly",
    batch_size=8,
    augment=True,
    epochs_for_default_budget=50,
)
TASKS = {"smoke": (SecondTask(**SMOKE).normalised(),), "paper": (SecondTask(**PAPER).normalised(),)}
