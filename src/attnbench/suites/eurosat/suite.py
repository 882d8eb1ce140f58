"""EuroSAT land-cover classification as an attnbench suite: `feature_map` mechanisms in a residual CNN,
`sequence` mechanisms as the token mixer of a small ViT, both trained from scratch on one FLOP budget.

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

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.errors import ConfigError
from attnbench.suite import CellContext, Suite, Task, settings_from, task_of

BACKBONES = {"cnn": "feature_map", "vit": "sequence"}
DATA = ("synthetic", "eurosat")
SPLITS = ("official", "random", "generated")
SCHEDULES = ("cosine", "warm_restarts")
NUM_CLASSES = 10
EUROSAT_SIZE = 64
DEFAULT_RANDOM_SPLIT = ((0.7, 0.15, 0.15), 42)  # the balanced-attention authors' split
DEFAULT_SYNTHETIC = ((300, 50, 100), 0)  # images per class (train, val, test), generator seed
# The authors' config_12layer.yaml, in class order (AnnualCrop ... SeaLake).
PAPER_CLASS_WEIGHTS = (1.0, 0.8, 1.3, 1.0, 1.3, 1.0, 1.3, 0.8, 1.0, 0.8)
TUPLES = ("split_ratios", "synthetic_per_class", "widths", "blocks", "strides", "dropblock", "class_weights")


@dataclass(frozen=True)
class EuroSATTask:
    backbone: str
    data: str
    root: str | None
    bands: str
    split: str
    split_ratios: tuple[float, ...] | None
    split_seed: int | None
    image_size: int
    synthetic_per_class: tuple[int, ...] | None
    data_seed: int | None
    # the CNN
    stem_width: int
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    strides: tuple[int, ...]
    dropblock: tuple[float, ...]
    dropout: float
    # the ViT
    patch_size: int
    vit_dim: int
    vit_depth: int
    mlp_ratio: int
    # training
    batch_size: int
    learning_rate: float
    weight_decay: float
    schedule: str
    class_weights: tuple[float, ...] | None
    augment: bool
    epochs_for_default_budget: float
    dropblock_size: int = 7
    restart_epochs: float = 15.0
    restart_growth: float = 2.0

    @property
    def label(self) -> str:
        if self.data == "synthetic":
            return f"synthetic-{self.image_size}px-{self.backbone}"
        split = self.split
        if split == "random" and self.split_ratios:
            split += "-".join(f"{round(100 * r)}" for r in self.split_ratios)
        return f"eurosat-{self.bands}-{split}-{self.backbone}"

    @property
    def channels(self) -> int:
        return 3 if self.bands == "rgb" else 13

    def as_task(self) -> Task:
        return task_of(self.label, self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EuroSATTask:
        return settings_from(cls, config, "EuroSAT", TUPLES)

    def normalised(self) -> EuroSATTask:
        """The data settings made consistent: a root means the real EuroSAT (64x64) with a real split;
        synthetic data has its generated split. What the config then says is what a cell uses."""
        if self.root is not None:
            split = "random" if self.split == "generated" else self.split
            ratios, seed = (None, None) if split == "official" else (
                self.split_ratios or DEFAULT_RANDOM_SPLIT[0],
                DEFAULT_RANDOM_SPLIT[1] if self.split_seed is None else self.split_seed)
            return replace(self, data="eurosat", split=split, split_ratios=ratios, split_seed=seed,
                           image_size=EUROSAT_SIZE, synthetic_per_class=None, data_seed=None)
        if self.data == "synthetic":
            return replace(self, bands="rgb", split="generated", split_ratios=None, split_seed=None,
                           synthetic_per_class=self.synthetic_per_class or DEFAULT_SYNTHETIC[0],
                           data_seed=DEFAULT_SYNTHETIC[1] if self.data_seed is None else self.data_seed)
        return self

    def validate(self) -> None:
        """Fail at planning time, with the setting named, not in the middle of a run."""
        from attnbench.suites.eurosat import data

        _one_of("backbone", self.backbone, tuple(BACKBONES))
        _one_of("data", self.data, DATA)
        _one_of("bands", self.bands, data.BANDS)
        _one_of("schedule", self.schedule, SCHEDULES)
        _one_of("split", self.split, ("generated",) if self.data == "synthetic" else ("official", "random"))
        for name in ("image_size", "stem_width", "patch_size", "vit_dim", "vit_depth", "mlp_ratio", "batch_size",
                     "dropblock_size"):
            _positive_int(name, getattr(self, name))
        stages = len(self.widths) if isinstance(self.widths, tuple) else 0
        for name in ("widths", "blocks", "strides", "dropblock"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value or len(value) != stages:
                raise ConfigError(f"EuroSAT {name}={value!r} must list one value per CNN stage, as widths does")
        for name in ("widths", "blocks", "strides"):
            for value in getattr(self, name):
                _positive_int(name, value)
        for name, values in (("dropblock", self.dropblock), ("dropout", (self.dropout,))):
            if any(not _number(v) or not 0 <= v < 1 for v in values):
                raise ConfigError(f"EuroSAT {name}={getattr(self, name)!r} must be probabilities in [0, 1)")
        if self.dropblock_size % 2 == 0:
            raise ConfigError(f"EuroSAT dropblock_size={self.dropblock_size} must be odd (a centred block)")
        if self.image_size % self.patch_size:
            raise ConfigError(f"EuroSAT patch_size={self.patch_size} must divide the image size {self.image_size}")
        for name in ("learning_rate", "epochs_for_default_budget", "restart_epochs"):
            if not _number(getattr(self, name)) or not getattr(self, name) > 0:
                raise ConfigError(f"EuroSAT {name}={getattr(self, name)!r} must be a positive number")
        if not _number(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"EuroSAT weight_decay={self.weight_decay!r} must be a number >= 0")
        if not _number(self.restart_growth) or self.restart_growth < 1:
            raise ConfigError(f"EuroSAT restart_growth={self.restart_growth!r} must be a number >= 1")
        if not isinstance(self.augment, bool):
            raise ConfigError(f"EuroSAT augment={self.augment!r} must be True or False")
        if self.class_weights is not None and (
                not isinstance(self.class_weights, tuple) or len(self.class_weights) != NUM_CLASSES
                or any(not _number(w) or w <= 0 for w in self.class_weights)):
            raise ConfigError(f"EuroSAT class_weights={self.class_weights!r} must be {NUM_CLASSES} positive numbers "
                              f"(AnnualCrop ... SeaLake) or None")
        if self.data == "synthetic":
            self._validate_synthetic()
        elif self.root is not None:
            self._validate_root()

    def _validate_synthetic(self) -> None:
        counts = self.synthetic_per_class
        if (not isinstance(counts, tuple) or len(counts) != 3 or any(not isinstance(c, int) or isinstance(c, bool)
                                                                     or c < 0 for c in counts)
                or counts[0] < 1 or counts[2] < 1):
            raise ConfigError(f"EuroSAT synthetic_per_class={counts!r} must be three image counts per class "
                              f"(train, val, test), train and test at least 1")
        if not isinstance(self.data_seed, int) or isinstance(self.data_seed, bool):
            raise ConfigError(f"EuroSAT data_seed={self.data_seed!r} must be an integer")
        if self.batch_size > NUM_CLASSES * counts[0]:
            raise ConfigError(f"EuroSAT batch_size={self.batch_size} exceeds the {NUM_CLASSES * counts[0]} "
                              f"synthetic training images")

    def _validate_root(self) -> None:
        from attnbench.suites.eurosat import data

        data.list_files(data.layout(self.root, self.bands))
        if self.split == "random":
            data.check_ratios(self.split_ratios)
            if not isinstance(self.split_seed, int) or isinstance(self.split_seed, bool):
                raise ConfigError(f"EuroSAT split_seed={self.split_seed!r} must be an integer")
        else:
            for split in data.SPLITS:
                data.read_split_list(data.layout(self.root, self.bands), split)
        count = self.train_images()
        if self.batch_size > count:
            raise ConfigError(f"EuroSAT batch_size={self.batch_size} exceeds the {count} training images "
                              f"under {self.root}")

    def train_images(self) -> int:
        if self.data == "synthetic":
            return NUM_CLASSES * self.synthetic_per_class[0]
        from attnbench.suites.eurosat.data import train_count

        return train_count(self.root, self.bands, self.split, self.split_ratios)

    def cnn_config(self):
        from attnbench.suites.eurosat.model import CNNConfig

        return CNNConfig(self.channels, NUM_CLASSES, self.image_size, self.stem_width, self.widths, self.blocks,
                         self.strides, self.dropblock, self.dropblock_size, self.dropout)

    def vit_config(self):
        from attnbench.suites.eurosat.model import ViTConfig

        return ViTConfig(self.channels, NUM_CLASSES, self.image_size, self.patch_size, self.vit_dim, self.vit_depth,
                         self.mlp_ratio)


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"EuroSAT {name}={value!r} is not one of {', '.join(allowed)}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"EuroSAT {name}={value!r} must be a positive integer")


SMOKE = dict(
    data="synthetic", root=None, bands="rgb", split="generated", split_ratios=None, split_seed=None, image_size=32,
    synthetic_per_class=DEFAULT_SYNTHETIC[0], data_seed=DEFAULT_SYNTHETIC[1],
    stem_width=16, widths=(16, 32, 64), blocks=(1, 1, 1), strides=(2, 2, 2), dropblock=(0.0, 0.0, 0.0), dropout=0.0,
    patch_size=4, vit_dim=64, vit_depth=2, mlp_ratio=2,
    # Measured on 2 CPU cores: `none` reaches about 0.87 accuracy and the ViT with mha about 0.8 in
    # ten epochs of the budget, so mechanisms have room to differ.
    batch_size=64, learning_rate=2e-3, weight_decay=0.05, schedule="cosine", class_weights=None, augment=False,
    epochs_for_default_budget=10,
)
PAPER = dict(
    data="eurosat", root=None, bands="rgb", split="random", split_ratios=DEFAULT_RANDOM_SPLIT[0],
    split_seed=DEFAULT_RANDOM_SPLIT[1], image_size=EUROSAT_SIZE, synthetic_per_class=None, data_seed=None,
    stem_width=64, widths=(64, 128, 256, 512), blocks=(3, 3, 3, 2), strides=(1, 2, 2, 2),
    dropblock=(0.05, 0.10, 0.15, 0.20), dropout=0.5,
    patch_size=4, vit_dim=192, vit_depth=12, mlp_ratio=4,
    batch_size=64, learning_rate=1e-3, weight_decay=0.05, schedule="warm_restarts",
    class_weights=PAPER_CLASS_WEIGHTS, augment=True, epochs_for_default_budget=80,
)
TASKS = {profile: tuple(EuroSATTask(backbone=backbone, **settings) for backbone in BACKBONES)
         for profile, settings in (("smoke", SMOKE), ("paper", PAPER))}


class EuroSATSuite(Suite):
    name = "eurosat"
    description = "EuroSAT land-cover classification: feature-map attention in a CNN, sequence attention in a ViT."
    accepts = ("feature_map", "sequence")
    groups = ("vision",)
    primary_metric = "accuracy"
    higher_is_better = True
    profiles = tuple(TASKS)
    version = "1"

    def tasks(self, profile: str) -> list[Task]:
        self.check_profile(profile)
        return [task.as_task() for task in TASKS[profile]]

    def make_task(self, config: Any, label: str) -> Task:
        task = EuroSATTask.from_config(config).normalised()
        task.validate()
        return task.as_task()

    def settings(self, profile: str) -> set[str]:
        return {f.name for f in fields(EuroSATTask)} - {"backbone"}

    def pairs_with(self, task: Task, mechanism: Any) -> tuple[bool, str | None]:
        if BACKBONES[task.config["backbone"]] != mechanism.kind:
            return False, None
        if task.config["data"] == "eurosat" and not task.config["root"]:
            return False, ("eurosat reads the real EuroSAT in this profile: --set root=DIR "
                           "(`attnbench data eurosat --root DIR` checks a folder or says how to get the data)")
        if mechanism.kind == "sequence" and not mechanism.supports_bidirectional:
            return False, (f"eurosat skips {mechanism.name}: its ViT mixes image patches in both directions and "
                           f"{mechanism.name} is causal-only")
        return True, None

    def default_seeds(self, profile: str) -> int:
        return 2 if profile == "smoke" else 3

    def mechanism_overrides(self, profile: str) -> dict[str, Any]:
        return {"num_heads": 4} if profile == "smoke" else {}  # smoke ViT width 64: four heads of 16

    def default_budget(self, profile: str, task: Task) -> Budget:
        """What the CNN with no mechanism (`none`) spends in `epochs_for_default_budget` epochs of the
        training split; the ViT task gets the same budget, so both backbones share one table."""
        from attnbench.suites.eurosat.model import cnn_forward_flops

        spec = EuroSATTask.from_config(task.config)
        per_image = 3 * cnn_forward_flops(spec.cnn_config(), None, {}, batch=1)["total"]
        return Budget("flops", float(per_image * spec.train_images() * spec.epochs_for_default_budget))

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        from attnbench.suites.eurosat.train import train_and_evaluate

        task = EuroSATTask.from_config(cell.task_config)
        return train_and_evaluate(task, mechanism, dict(cell.hparams), cell.budget, cell.seed, ctx)
