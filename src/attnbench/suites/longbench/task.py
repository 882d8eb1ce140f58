"""The longbench suite's tasks: the settings of one task, how they are checked, and each
profile's tasks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from attnbench.errors import ConfigError
from attnbench.suite import BACKENDS, Task, TaskSettings
from attnbench.suites.longbench import lm_eval_tasks
from attnbench.suites.longbench.data import SIZES, VARIANTS, config_name, load_folder
from attnbench.suites.longbench.metrics import metric_version
from attnbench.suites.longbench.prompts import MAX_NEW_TOKENS
from attnbench.values import check_whole, is_whole

# A default window leaves room for the longest answer (512 new tokens) and a chat template's
# wrapping; the official config/model2maxlen.json reads 3,500 tokens with 4k models.

ANSWER_ROOM = max(MAX_NEW_TOKENS.values()) + 64
REFERENCE_MAX_LENGTH = (
    3500  # model2maxlen.json's Llama-2-7B-chat-4k: budgets a cell planned without a model
)
SMOKE_DATASETS = ("qasper", "hotpotqa", "gov_report", "trec", "passage_retrieval_en", "lcc")


@dataclass(frozen=True)
class LongBenchTask(TaskSettings):
    suite_title: ClassVar[str] = "longbench"

    variant: str = "longbench"
    datasets: tuple[str, ...] | None = (
        None  # None: every dataset of the variant, in the official order
    )
    max_examples: int | None = None  # the first rows of each dataset; None: all
    model: str | None = None
    data_dir: str | None = None
    max_length: int | None = None  # prompt tokens kept; None: the model's window less ANSWER_ROOM
    dtype: str = "float32"
    chat_template: bool | None = None  # None: when the tokenizer has one
    backend: str = "native"  # or "lm-eval": lm-eval's longbench tasks (`lm_eval_backend`)

    @property
    def names(self) -> tuple[str, ...]:
        return self.datasets or VARIANTS[self.variant]

    @property
    def label(self) -> str:
        backend = "" if self.backend == "native" else f"-{self.backend}"
        return f"{self.variant}{backend}-{Path(str(self.model)).name if self.model else 'no-model'}"

    def as_task(self) -> Task:
        config = asdict(self)
        config["datasets"] = list(self.datasets) if self.datasets else None
        # packages and backend: part of the config hash, never a setting
        config["metrics"] = (
            lm_eval_tasks.metric_version() if self.backend == "lm-eval" else metric_version()
        )
        if self.backend == "native":
            del config[
                "backend"
            ]  # native configs stay as before backends existed, so `--resume` finds their cells
        return Task(self.label, config)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LongBenchTask:
        values = {k: v for k, v in config.items() if k != "metrics"}
        chosen = values.get("datasets")
        if chosen == "all":
            chosen = None
        elif isinstance(chosen, str):
            chosen = [name.strip() for name in chosen.split(",") if name.strip()]
        values["datasets"] = tuple(chosen) if chosen else None
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"longbench task settings: {exc}") from None

    def validate(self) -> None:
        """Fail at planning time with the setting named, not after a model has loaded."""
        from attnbench.toolkit.pretrained import DTYPES

        if self.variant not in VARIANTS:
            raise ConfigError(
                f"longbench variant {self.variant!r} is not one of {', '.join(VARIANTS)}"
            )
        known = VARIANTS[self.variant]
        for name in self.datasets or ():
            if name not in known:
                raise ConfigError(
                    f"longbench dataset {name!r} is not in {self.variant} (datasets:"
                    f" {', '.join(known)})"
                )
        if self.datasets and len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"longbench datasets {list(self.datasets)} names a dataset twice")
        for name, least in (("max_examples", 1), ("max_length", 2)):
            if getattr(self, name) is not None:
                check_whole(f"longbench {name}", getattr(self, name), least)
        if self.dtype not in DTYPES:
            raise ConfigError(f"longbench dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.chat_template not in (None, True, False):
            raise ConfigError(
                f"longbench chat_template={self.chat_template!r} must be True, False or None (auto)"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"longbench backend {self.backend!r} is not one of {', '.join(BACKENDS)}"
            )
        if self.backend == "lm-eval":
            for (
                name
            ) in self.names:  # lm-eval is installed and ships a task for every selected dataset
                lm_eval_tasks.task_yaml(config_name(name, self.variant))
        if self.model is not None:
            from attnbench.toolkit.pretrained import checkpoint_source

            checkpoint_source(str(self.model))
        if self.data_dir is not None:
            for name in (
                self.names
            ):  # every row is checked now: a malformed one is an error before any model loads
                load_folder(self.data_dir, config_name(name, self.variant))

    def resolved(self) -> LongBenchTask:
        """The task with `max_length` read from the model's window when not set."""
        if self.model is None or self.max_length is not None:
            return self
        window = model_window(str(self.model))
        if window - ANSWER_ROOM < 2:
            raise ConfigError(
                f"model {self.model} has a window of {window} tokens, too short to leave room for "
                f"LongBench's answers ({ANSWER_ROOM} tokens); set the prompt length with "
                "--set max_length=N"
            )
        return LongBenchTask(**{**asdict(self), "max_length": window - ANSWER_ROOM})

    def planned_rows(self) -> int:
        sizes = SIZES[self.variant]
        return sum(min(sizes[name], self.max_examples or sizes[name]) for name in self.names)


def model_window(model: str) -> int:
    """The context window in the model's config (max_position_embeddings or its older names)."""
    from attnbench.toolkit.pretrained import checkpoint_source, require_transformers

    source = checkpoint_source(model)
    from huggingface_hub import constants

    config = require_transformers().AutoConfig.from_pretrained(
        source, local_files_only=True, cache_dir=constants.HF_HUB_CACHE
    )
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(text, name, None)
        if is_whole(value, 1):
            return value
    raise ConfigError(
        f"model {model}: its config names no context window (max_position_embeddings); "
        "set the prompt length with --set max_length=N"
    )


TASKS = {
    "smoke": LongBenchTask(datasets=SMOKE_DATASETS, max_examples=2),
    "paper": LongBenchTask(dtype="bfloat16"),
}
