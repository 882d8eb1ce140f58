"""The rewardbench suite's tasks: the settings of one task, how they are checked, and each
profile's tasks."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from attnbench.errors import ConfigError
from attnbench.suite import Task, TaskSettings
from attnbench.suites.rewardbench.rewards import REF_FREE_NORMS
from attnbench.suites.rewardbench.scoring import metric_version
from attnbench.suites.rewardbench.sections import ROWS, SUBSETS
from attnbench.suites.rewardbench.smoke import RANDOM_MODEL
from attnbench.values import check_whole

MODES = ("classifier", "implicit", "judge")
SOURCES = ("hub", "synthetic")  # besides a path
SYNTHETIC_ROWS = 2  # per subset


@dataclass(frozen=True)
class RewardBenchTask(TaskSettings):
    suite_title: ClassVar[str] = "rewardbench"

    mode: str = "classifier"
    model: str | None = None  # a local checkpoint folder, a cached hub id, or `random:tiny`
    reference: str | None = None  # implicit mode: the reference model; None: reference-free
    ref_free_norm: str = (
        "sum"  # implicit mode without a reference: sum, avg or norm of the log-probabilities
    )
    data: str = (
        "hub"  # "hub" (the datasets cache), "synthetic" (smoke rows) or a .parquet/.jsonl path
    )
    max_examples: int | None = None  # the first rows of each subset; None: all
    max_length: int = 2048  # tokens per sequence read (run_rm.py's default)
    dtype: str = "float32"
    chat_template: bool | None = None  # None: when the tokenizer has one

    @property
    def label(self) -> str:
        """`<mode>-<model>[-ref-<reference>]`, each model by its folder or hub name."""

        def short(ref: str | None) -> str:
            return "no-model" if ref is None else Path(ref).name.replace(":", "-")

        return f"{self.mode}-{short(self.model)}" + (
            f"-ref-{short(self.reference)}" if self.reference else ""
        )

    def as_task(self) -> Task:
        config = asdict(self)
        config["metrics"] = metric_version()  # part of the config hash, never a setting
        return Task(self.label, config)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RewardBenchTask:
        try:
            return cls(**{k: v for k, v in config.items() if k != "metrics"})
        except TypeError as exc:
            raise ConfigError(f"rewardbench task settings: {exc}") from None

    def validate(self) -> None:
        """Fail at planning time with the setting named, not after a model has loaded."""
        from attnbench.toolkit.pretrained import DTYPES

        if self.mode not in MODES:
            raise ConfigError(f"rewardbench mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.reference is not None and self.mode != "implicit":
            raise ConfigError(f"rewardbench reference={self.reference!r} is only for mode=implicit")
        if self.ref_free_norm not in REF_FREE_NORMS:
            raise ConfigError(
                f"rewardbench ref_free_norm {self.ref_free_norm!r} is not one of "
                f"{', '.join(REF_FREE_NORMS)}"
            )
        for name, least in (("max_examples", 1), ("max_length", 8)):
            if getattr(self, name) is not None or name == "max_length":
                check_whole(f"rewardbench {name}", getattr(self, name), least)
        if self.dtype not in DTYPES:
            raise ConfigError(f"rewardbench dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.chat_template not in (None, True, False):
            raise ConfigError(
                f"rewardbench chat_template={self.chat_template!r} must be True, False or None"
                " (auto)"
            )
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(
                f"rewardbench data={self.data!r} must be hub, synthetic or a .parquet/.jsonl path"
            )
        from attnbench.toolkit.pretrained import checkpoint_source

        for ref in (self.model, self.reference):
            if ref is not None and ref != RANDOM_MODEL:
                checkpoint_source(str(ref))
        if self.data not in SOURCES:
            from attnbench.suites.rewardbench.data import load_file

            load_file(
                self.data
            )  # every row is checked now: a malformed one is an error before any model loads

    def planned_rows(self) -> int:
        """Pairs a cell reads: of the official split (hub), the smoke rows, or the file given."""
        if self.data == "hub":
            sizes = dict(ROWS)
        elif self.data == "synthetic":
            sizes = {subset: SYNTHETIC_ROWS for subset in SUBSETS}
        else:
            from attnbench.suites.rewardbench.data import load_file

            sizes = Counter(row["subset"] for row in load_file(self.data).rows)
        return sum(min(n, self.max_examples or n) for n in sizes.values())

    @property
    def sequences_per_pair(self) -> int:
        return 4 if self.reference else 2


TASKS = {
    # the random model on made-up rows; a real --model reads RewardBench's first rows instead
    # (`configure`)
    "smoke": RewardBenchTask(
        model=RANDOM_MODEL, data="synthetic", max_examples=SYNTHETIC_ROWS, max_length=512
    ),
    "paper": RewardBenchTask(dtype="bfloat16"),
}
