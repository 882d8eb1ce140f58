"""The needle suite's tasks: the settings of one task, how they are checked, and each profile's
tasks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from attnbench.errors import ConfigError
from attnbench.suite import Task, TaskSettings
from attnbench.values import check_whole, is_whole

ANSWER_TOKENS = 8  # a from-scratch model's answer: seven digits and a full stop
MODES = ("scratch", "pretrained")
COMMON = ("mode", "niah_task", "lengths", "depths", "samples_per_point")
SCRATCH = (
    "train_length",
    "d_model",
    "n_layers",
    "batch_size",
    "learning_rate",
    "short_conv",
    "mlp",
    "weight_decay",
    "train_steps_for_default_budget",
)
PRETRAINED = ("model", "dtype", "tokens_to_generate", "essay_dir")
MODE_FIELDS = {"scratch": COMMON + SCRATCH, "pretrained": COMMON + PRETRAINED}


@dataclass(frozen=True)
class NeedleTask(TaskSettings):
    suite_title: ClassVar[str] = "needle"

    mode: str
    niah_task: str
    lengths: tuple[int, ...]
    depths: tuple[float, ...]
    samples_per_point: int
    # from scratch
    train_length: int = 256
    d_model: int = 64
    n_layers: int = 2
    batch_size: int = 16
    learning_rate: float = 1e-3
    short_conv: int = 4
    mlp: bool = False
    weight_decay: float = 0.1
    train_steps_for_default_budget: int = 1000
    # pretrained
    model: str | None = None
    dtype: str = "float32"
    tokens_to_generate: int = 32
    essay_dir: str | None = None

    @property
    def label(self) -> str:
        if self.mode == "scratch":
            return f"{self.niah_task}-scratch-T{self.train_length}"
        name = Path(str(self.model)).name if self.model else "no-model"
        return f"{self.niah_task}-{name}"

    def as_task(self) -> Task:
        values = asdict(self)
        config = {
            k: list(values[k]) if isinstance(values[k], tuple) else values[k]
            for k in MODE_FIELDS[self.mode]
        }
        return Task(self.label, config)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NeedleTask:
        values = dict(config)
        for key in ("lengths", "depths"):
            if key in values:
                value = values[key]
                values[key] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"needle task settings: {exc}") from None

    def validate(self) -> None:
        """Fail at planning time, with the setting named, not in the middle of a run."""
        from attnbench.suites.needle.data import TASKS, _check_depth

        if self.mode not in MODES:
            raise ConfigError(f"needle mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.niah_task not in TASKS:
            raise ConfigError(
                f"needle niah_task {self.niah_task!r} is not one of {', '.join(TASKS)}"
            )
        positive = ["samples_per_point"] + (
            ["train_length", "d_model", "n_layers", "batch_size", "train_steps_for_default_budget"]
            if self.mode == "scratch"
            else ["tokens_to_generate"]
        )
        for name in positive:
            check_whole(f"needle {name}", getattr(self, name))
        if not self.lengths or any(not is_whole(n, 1) for n in self.lengths):
            raise ConfigError(
                f"needle lengths={list(self.lengths)!r} must be positive token counts"
            )
        if not self.depths:
            raise ConfigError("needle depths must name at least one depth (percent, 0-100)")
        for depth in self.depths:
            _check_depth(depth, "needle depth")
        if self.mode == "scratch":
            self._validate_scratch()
        else:
            self._validate_pretrained()

    def _validate_scratch(self) -> None:
        from attnbench.suites.needle.data import TASKS

        task = TASKS[self.niah_task]
        if task.type_haystack == "essay" or "uuids" in (task.type_needle_k, task.type_needle_v):
            raise ConfigError(
                f"needle niah_task {self.niah_task!r}: from-scratch models read the noise or needle"
                " haystack with word keys and number values (niah_single_1, niah_multikey_2)"
            )
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, (int, float))
            or not self.learning_rate > 0
        ):
            raise ConfigError(
                f"needle learning_rate={self.learning_rate!r} must be a positive number"
            )
        from attnbench.suites.needle.data import generate
        from attnbench.suites.needle.tokenizer import default_tokenizer

        for length in {
            self.train_length,
            *self.lengths,
        }:  # room for the prompt with no haystack plus the answer
            generate(
                self.niah_task,
                count_tokens=default_tokenizer(),
                max_seq_length=length,
                num_samples=1,
                seed=0,
                tokens_to_generate=ANSWER_TOKENS,
            )

    def _validate_pretrained(self) -> None:
        from attnbench.suites.needle.data import TASKS, read_essays

        if self.model is not None:
            from attnbench.suites.needle.data import generate
            from attnbench.toolkit.pretrained import checkpoint_source

            source = checkpoint_source(
                str(self.model)
            )  # a local folder that exists, or a cached hub id
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            for length in self.lengths:  # a clear error now for a length the prompt alone overflows
                generate(
                    self.niah_task,
                    count_tokens=tokenizer,
                    max_seq_length=length,
                    num_samples=1,
                    seed=0,
                    tokens_to_generate=self.tokens_to_generate,
                    essay_dir=self.essay_dir,
                )
        if TASKS[self.niah_task].type_haystack == "essay":
            if self.essay_dir is None:
                raise ConfigError(
                    f"needle niah_task {self.niah_task!r} reads an essay haystack: "
                    "--set essay_dir=FOLDER (a folder of .txt files)"
                )
            read_essays(self.essay_dir)


SMOKE_DEPTHS = (0.0, 25.0, 50.0, 75.0, 100.0)
PAPER_DEPTHS = tuple(float(d) for d in range(0, 101, 10))

SCRATCH_TASKS = {
    # Measured: mha reads 100% of needles within 256 tokens and ~90% at 512 after 2,000 steps of 8
    # (about 90 s on one CPU core); sliding_window's smoke window of 16 reads none.
    "smoke": (
        NeedleTask(
            "scratch",
            "niah_single_1",
            lengths=(128, 256, 512),
            depths=SMOKE_DEPTHS,
            samples_per_point=8,
            train_length=256,
            d_model=64,
            n_layers=2,
            batch_size=8,
            learning_rate=3e-3,
            train_steps_for_default_budget=2000,
        ),
    ),
    "paper": tuple(
        NeedleTask(
            "scratch",
            name,
            lengths=(512, 1024, 2048, 4096, 8192),
            depths=PAPER_DEPTHS,
            samples_per_point=25,
            train_length=2048,
            d_model=256,
            n_layers=4,
            batch_size=32,
            learning_rate=5e-4,
            mlp=True,
            train_steps_for_default_budget=20_000,
        )
        for name in ("niah_single_1", "niah_multikey_2")
    ),
}
PRETRAINED_TASKS = {
    "smoke": (
        NeedleTask(
            "pretrained",
            "niah_single_1",
            lengths=(128, 256),
            depths=(0.0, 50.0, 100.0),
            samples_per_point=2,
            tokens_to_generate=16,
        ),
    ),
    "paper": (
        NeedleTask(
            "pretrained",
            "niah_single_1",
            lengths=(4096, 8192, 16384, 32768),
            depths=PAPER_DEPTHS,
            samples_per_point=25,
            tokens_to_generate=128,
            dtype="bfloat16",
        ),
    ),
}
