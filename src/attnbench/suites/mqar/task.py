"""MQAR's tasks: the settings of one task (Zoology's data, model and recipe), and each profile's
tasks.

`smoke` is one small task that a CPU trains in seconds; `paper` is Zoology's Figure 2 (vocab 8,192;
(64, 4), (128, 8), (256, 16); d_model 64-512; learning rates logspace(-4, -2, 4); 100,000 training
and 3,000 test examples; the default budget is what attention spends in Zoology's 64 epochs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from attnbench.errors import ConfigError
from attnbench.suite import TaskSettings

PAPER_LRS = (1e-4, 4.641588833612782e-4, 2.1544346900318822e-3, 1e-2)  # numpy.logspace(-4, -2, 4)
PAPER_EPOCHS = 64
TEST_SEED_OFFSET = 2**31  # Zoology draws test seeds from [2^31, 2^32), apart from training seeds


@dataclass(frozen=True)
class MQARTask(TaskSettings):
    """One MQAR task: Zoology's data settings, the model's width and depth, and the training
    recipe."""

    suite_title: ClassVar[str] = "MQAR"

    vocab_size: int
    seq_len: int
    num_kv_pairs: int
    d_model: int
    num_train: int
    num_test: int
    batch_size: int
    learning_rates: tuple[float, ...]
    n_layers: int = 2
    mlp: bool = False
    weight_decay: float = 0.1
    power_a: float = 0.01
    random_non_queries: bool = False
    epochs_for_default_budget: float = PAPER_EPOCHS

    @property
    def label(self) -> str:
        return f"V{self.vocab_size}-L{self.seq_len}-kv{self.num_kv_pairs}-d{self.d_model}"

    def validate(self) -> None:
        """Fail at planning time, not mid-run, on a task that cannot exist."""
        from attnbench.suites.mqar.data import multiquery_ar

        for name in ("d_model", "n_layers", "num_train", "num_test", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"MQAR {name}={getattr(self, name)!r} must be a positive integer")
        if self.batch_size > self.num_train:
            raise ConfigError(
                f"MQAR batch_size={self.batch_size} exceeds num_train={self.num_train}"
            )
        if not self.learning_rates or any(
            not isinstance(lr, (int, float)) or lr <= 0 for lr in self.learning_rates
        ):
            raise ConfigError(
                f"MQAR learning_rates={list(self.learning_rates)!r} must be positive numbers"
            )
        multiquery_ar(
            self.vocab_size,
            1,
            self.seq_len,
            seed=0,
            power_a=self.power_a,
            num_kv_pairs=self.num_kv_pairs,
            random_non_queries=self.random_non_queries,
        )


def _paper_batch_size(seq_len: int) -> int:
    return {1024: 64, 512: 128, 256: 256}.get(seq_len, 512)


SMOKE_TASKS = (
    MQARTask(
        vocab_size=128,
        seq_len=32,
        num_kv_pairs=4,
        d_model=64,
        num_train=20_000,
        num_test=1_000,
        batch_size=32,
        learning_rates=(1e-3,),
        epochs_for_default_budget=8,
    ),
)
PAPER_TASKS = tuple(
    MQARTask(
        vocab_size=8192,
        seq_len=length,
        num_kv_pairs=pairs,
        d_model=width,
        num_train=100_000,
        num_test=3_000,
        batch_size=_paper_batch_size(length),
        learning_rates=PAPER_LRS,
    )
    for length, pairs in ((64, 4), (128, 8), (256, 16))
    for width in (64, 128, 256, 512)
)


TASKS = {"smoke": SMOKE_TASKS, "paper": PAPER_TASKS}
