"""LongBench (THUDM, v1) as an attnbench suite: a pretrained model reads the official long-context prompts with
a `pretrained` mechanism installed as its attention, answers greedily, and is scored with the official metrics.

A cell runs every selected dataset of one variant (`longbench`: 21 datasets; `longbench_e`: the 13 with
length buckets) and stores the mean over datasets as `score`, one metric per dataset (and per dataset and
bucket for LongBench-E), and what the mechanism saved against dense attention at the prompt lengths actually
read: `prefill_flop_fraction` and `kv_kept_fraction`. Nothing is trained, so cells are budgeted in the prompt
tokens they read, never sharing a leaderboard table with trained cells. A cell without a model, without the
data or without the metric packages is stored as skipped, with the reason.

Two backends evaluate a cell: `native` (THUDM's protocol, `pretrained`) and `lm-eval` (lm-evaluation-harness's
own longbench tasks, `lm_eval_backend`), whose variant differs from the official one; the backend is part of the
task's configuration and label, and its metric version names lm-eval, so the two are never averaged together.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.errors import ConfigError, SkipCell
from attnbench.suite import BACKENDS, CellContext, Suite, Task
from attnbench.suites.longbench import lm_eval_tasks
from attnbench.suites.longbench.data import SIZES, VARIANTS, DataUnavailable, config_name, load, load_folder
from attnbench.suites.longbench.metrics import INSTALL_HINT, metric_version, missing_packages
from attnbench.suites.longbench.prompts import MAX_NEW_TOKENS

# A default window leaves room for the longest answer (512 new tokens) and a chat template's wrapping; the
# official config/model2maxlen.json reads 3,500 tokens with 4k models.
ANSWER_ROOM = max(MAX_NEW_TOKENS.values()) + 64
REFERENCE_MAX_LENGTH = 3500  # model2maxlen.json's Llama-2-7B-chat-4k: budgets a cell planned without a model
SMOKE_DATASETS = ("qasper", "hotpotqa", "gov_report", "trec", "passage_retrieval_en", "lcc")


@dataclass(frozen=True)
class LongBenchTask:
    variant: str = "longbench"
    datasets: tuple[str, ...] | None = None  # None: every dataset of the variant, in the official order
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
        config["metrics"] = lm_eval_tasks.metric_version() if self.backend == "lm-eval" else metric_version()
        if self.backend == "native":
            del config["backend"]  # native configs stay as before backends existed, so `--resume` finds their cells
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
        from attnbench.pretrained import DTYPES

        if self.variant not in VARIANTS:
            raise ConfigError(f"longbench variant {self.variant!r} is not one of {', '.join(VARIANTS)}")
        known = VARIANTS[self.variant]
        for name in self.datasets or ():
            if name not in known:
                raise ConfigError(f"longbench dataset {name!r} is not in {self.variant} (datasets: {', '.join(known)})")
        if self.datasets and len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"longbench datasets {list(self.datasets)} names a dataset twice")
        for name, least in (("max_examples", 1), ("max_length", 2)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ConfigError(f"longbench {name}={value!r} must be an integer >= {least} (or None)")
        if self.dtype not in DTYPES:
            raise ConfigError(f"longbench dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.chat_template not in (None, True, False):
            raise ConfigError(f"longbench chat_template={self.chat_template!r} must be True, False or None (auto)")
        if self.backend not in BACKENDS:
            raise ConfigError(f"longbench backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.backend == "lm-eval":
            for name in self.names:  # lm-eval is installed and ships a task for every selected dataset
                lm_eval_tasks.task_yaml(config_name(name, self.variant))
        if self.model is not None:
            from attnbench.pretrained import checkpoint_source

            checkpoint_source(str(self.model))
        if self.data_dir is not None:
            for name in self.names:  # every row is checked now: a malformed one is an error before any model loads
                load_folder(self.data_dir, config_name(name, self.variant))

    def resolved(self) -> LongBenchTask:
        """The task with `max_length` read from the model's window when not set."""
        if self.model is None or self.max_length is not None:
            return self
        window = model_window(str(self.model))
        if window - ANSWER_ROOM < 2:
            raise ConfigError(f"model {self.model} has a window of {window} tokens, too short to leave room for "
                              f"LongBench's answers ({ANSWER_ROOM} tokens); set the prompt length with "
                              f"--set max_length=N")
        return LongBenchTask(**{**asdict(self), "max_length": window - ANSWER_ROOM})

    def planned_rows(self) -> int:
        sizes = SIZES[self.variant]
        return sum(min(sizes[name], self.max_examples or sizes[name]) for name in self.names)


def model_window(model: str) -> int:
    """The context window in the model's config (max_position_embeddings or its older names)."""
    from attnbench.pretrained import checkpoint_source, require_transformers

    source = checkpoint_source(model)
    from huggingface_hub import constants

    config = require_transformers().AutoConfig.from_pretrained(source, local_files_only=True,
                                                     cache_dir=constants.HF_HUB_CACHE)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(text, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    raise ConfigError(f"model {model}: its config names no context window (max_position_embeddings); "
                      f"set the prompt length with --set max_length=N")


TASKS = {
    "smoke": LongBenchTask(datasets=SMOKE_DATASETS, max_examples=2),
    "paper": LongBenchTask(dtype="bfloat16"),
}


class LongBenchSuite(Suite):
    name = "longbench"
    description = ("LongBench (THUDM): 21 long-context tasks (QA, summarization, few-shot, synthetic, code) "
                   "read by a pretrained model.")
    accepts = ("pretrained",)
    groups = ("long-context",)
    primary_metric = "score"
    higher_is_better = True
    profiles = ("smoke", "paper")
    version = "1"
    rank_per_task = True  # a task is one model read through one backend
    backends = BACKENDS

    def tasks(self, profile: str) -> list[Task]:
        self.check_profile(profile)
        return [TASKS[profile].as_task()]

    def make_task(self, config: Any, label: str) -> Task:
        task = LongBenchTask.from_config(dict(config))
        task.validate()
        return task.resolved().as_task()

    def settings(self, profile: str) -> set[str]:
        return {f.name for f in fields(LongBenchTask)}

    def configure(self, task: Task, overrides: Mapping[str, Any]) -> Task:
        unknown = sorted(set(overrides) - self.settings("smoke"))
        if unknown:
            raise ConfigError(f"suite 'longbench' has no task setting {unknown[0]!r} "
                              f"(settings: {', '.join(sorted(self.settings('smoke')))})")
        return self.make_task({**task.config, **overrides}, task.label)

    def default_seeds(self, profile: str) -> int:
        return 1  # greedy decoding of fixed prompts: another seed repeats the same run

    def default_budget(self, profile: str, task: Task) -> Budget:
        """The prompt tokens the planned rows may read: `max_length` each (before any chat wrapping)."""
        spec = LongBenchTask.from_config(task.config)
        return Budget("tokens", float(spec.planned_rows() * (spec.max_length or REFERENCE_MAX_LENGTH)))

    def budget_for(self, profile: str, task: Task, override: Budget | None) -> Budget:
        """`--budget` limits training; LongBench trains nothing and always counts the tokens it reads."""
        return self.default_budget(profile, task)

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        task = LongBenchTask.from_config(cell.task_config)
        reasons = []
        if task.model is None:
            reasons.append("no --model (a local checkpoint folder or a cached hub id)")
        if task.backend == "lm-eval" and lm_eval_tasks.missing_modules():
            reasons.append(f"--backend lm-eval needs {', '.join(lm_eval_tasks.missing_modules())} "
                           f"({lm_eval_tasks.INSTALL_HINT})")
        missing = missing_packages()
        if missing:
            reasons.append(f"LongBench's metrics need {', '.join(missing)} ({INSTALL_HINT})")
        data = {}
        try:
            for name in task.names:
                data[name] = load(config_name(name, task.variant), task.data_dir)
        except DataUnavailable as exc:
            reasons.append(str(exc))
        if reasons:
            raise SkipCell("longbench: " + "; ".join(reasons))
        if task.backend == "lm-eval":
            from attnbench.suites.longbench.lm_eval_backend import evaluate_lm_eval

            return evaluate_lm_eval(task, data, mechanism, dict(cell.hparams), ctx)
        from attnbench.suites.longbench.pretrained import evaluate_pretrained

        return evaluate_pretrained(task, data, mechanism, dict(cell.hparams), ctx)
