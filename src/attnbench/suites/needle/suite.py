"""Needle-in-a-haystack as an attnbench suite, in two modes chosen by the mechanism's kind.

* From scratch (`sequence` mechanisms): a small word-level LM trained under the FLOP budget on RULER
  passkey examples at `train_length`, then scored over `lengths` x `depths`, lengths beyond the
  training length included (`attnbench.suites.needle.scratch`).
* Pretrained (`pretrained` mechanisms, `--model` a local checkpoint or cached hub id): the mechanism
  is installed through transformers' attention interface and the model answers RULER prompts built
  with its own tokenizer by greedy decoding (`attnbench.suites.needle.pretrained`). Inference only:
  its cells are budgeted in the prompt tokens they read, so they never share a leaderboard table
  with trained cells.

Every cell stores the mean score (RULER's string_match_all, 0-100) and one `grid/L{length}/D{depth}`
metric per point, from which the leaderboard and the site draw length x depth heat maps.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.errors import ConfigError
from attnbench.suite import CellContext, Suite, Task

MODES = ("scratch", "pretrained")
COMMON = ("mode", "niah_task", "lengths", "depths", "samples_per_point")
SCRATCH = ("train_length", "d_model", "n_layers", "batch_size", "learning_rate", "short_conv", "mlp",
           "weight_decay", "train_steps_for_default_budget")
PRETRAINED = ("model", "dtype", "tokens_to_generate", "essay_dir")
MODE_FIELDS = {"scratch": COMMON + SCRATCH, "pretrained": COMMON + PRETRAINED}


@dataclass(frozen=True)
class NeedleTask:
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
        config = {k: list(values[k]) if isinstance(values[k], tuple) else values[k] for k in MODE_FIELDS[self.mode]}
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
            raise ConfigError(f"needle niah_task {self.niah_task!r} is not one of {', '.join(TASKS)}")
        positive = ["samples_per_point"] + (["train_length", "d_model", "n_layers", "batch_size",
                                              "train_steps_for_default_budget"] if self.mode == "scratch"
                                             else ["tokens_to_generate"])
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"needle {name}={value!r} must be a positive integer")
        if not self.lengths or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.lengths):
            raise ConfigError(f"needle lengths={list(self.lengths)!r} must be positive token counts")
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
            raise ConfigError(f"needle niah_task {self.niah_task!r}: from-scratch models read the noise or needle "
                              f"haystack with word keys and number values (niah_single_1, niah_multikey_2)")
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) \
                or not self.learning_rate > 0:
            raise ConfigError(f"needle learning_rate={self.learning_rate!r} must be a positive number")
        from attnbench.suites.needle.scratch import check_fits

        for length in {self.train_length, *self.lengths}:
            check_fits(self, length)

    def _validate_pretrained(self) -> None:
        from attnbench.suites.needle.data import TASKS, read_essays

        if self.model is not None:
            from attnbench.pretrained import checkpoint_source
            from attnbench.suites.needle.data import generate

            source = checkpoint_source(str(self.model))  # a local folder that exists, or a cached hub id
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            for length in self.lengths:  # a clear error now for a length the prompt alone overflows
                generate(self.niah_task, count_tokens=tokenizer, max_seq_length=length, num_samples=1, seed=0,
                         tokens_to_generate=self.tokens_to_generate, essay_dir=self.essay_dir)
        if TASKS[self.niah_task].type_haystack == "essay":
            if self.essay_dir is None:
                raise ConfigError(f"needle niah_task {self.niah_task!r} reads an essay haystack: "
                                  f"--set essay_dir=FOLDER (a folder of .txt files)")
            read_essays(self.essay_dir)


SMOKE_DEPTHS = (0.0, 25.0, 50.0, 75.0, 100.0)
PAPER_DEPTHS = tuple(float(d) for d in range(0, 101, 10))

SCRATCH_TASKS = {
    # Measured: mha reads 100% of needles within 256 tokens and ~90% at 512 after 2,000 steps of 8
    # (about 90 s on one CPU core); sliding_window's smoke window of 16 reads none.
    "smoke": (NeedleTask("scratch", "niah_single_1", lengths=(128, 256, 512), depths=SMOKE_DEPTHS,
                         samples_per_point=8, train_length=256, d_model=64, n_layers=2, batch_size=8,
                         learning_rate=3e-3, train_steps_for_default_budget=2000),),
    "paper": tuple(NeedleTask("scratch", name, lengths=(512, 1024, 2048, 4096, 8192), depths=PAPER_DEPTHS,
                              samples_per_point=25, train_length=2048, d_model=256, n_layers=4, batch_size=32,
                              learning_rate=5e-4, mlp=True, train_steps_for_default_budget=20_000)
                   for name in ("niah_single_1", "niah_multikey_2")),
}
PRETRAINED_TASKS = {
    "smoke": (NeedleTask("pretrained", "niah_single_1", lengths=(128, 256), depths=(0.0, 50.0, 100.0),
                         samples_per_point=2, tokens_to_generate=16),),
    "paper": (NeedleTask("pretrained", "niah_single_1", lengths=(4096, 8192, 16384, 32768), depths=PAPER_DEPTHS,
                         samples_per_point=25, tokens_to_generate=128, dtype="bfloat16"),),
}


class NeedleSuite(Suite):
    name = "needle"
    description = "Needle in a haystack (RULER NIAH): read back values hidden at a depth of a long context."
    accepts = ("sequence", "pretrained")
    groups = ("long-context",)
    primary_metric = "score"
    higher_is_better = True
    profiles = ("smoke", "paper")
    version = "1"

    def tasks(self, profile: str) -> list[Task]:
        self.check_profile(profile)
        return [task.as_task() for task in (*SCRATCH_TASKS[profile], *PRETRAINED_TASKS[profile])]

    def make_task(self, config: Any, label: str) -> Task:
        task = NeedleTask.from_config(dict(config))
        task.validate()
        return task.as_task()

    def settings(self, profile: str) -> set[str]:
        return {f.name for f in fields(NeedleTask)} - {"mode"}

    def configure(self, task: Task, overrides: Mapping[str, Any]) -> Task:
        """Settings of the other mode are left to the other mode's tasks (`--model` only reaches pretrained)."""
        known = self.settings("smoke")
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"suite 'needle' has no task setting {unknown[0]!r} "
                              f"(settings: {', '.join(sorted(known))})")
        mine = {k: v for k, v in overrides.items() if k in task.config}
        if not mine:
            return task
        return self.make_task({**task.config, **mine}, task.label)

    def pairs_with(self, task: Task, mechanism: Any) -> tuple[bool, str | None]:
        mode = "pretrained" if mechanism.kind == "pretrained" else "scratch"
        if task.config["mode"] != mode:
            return False, None
        if mode == "pretrained" and not task.config.get("model"):
            return False, (f"needle skips {mechanism.name}: pretrained mechanisms need --model "
                           f"(a local checkpoint folder or a cached hub id)")
        return True, None

    def default_seeds(self, profile: str) -> int:
        return 2 if profile == "smoke" else 3

    def table_of(self, task: str) -> str:
        """Pretrained cells rank per model (their label is `<niah_task>-<model>`), and two models are never
        averaged; the from-scratch tasks (`<niah_task>-scratch-T<length>`) average in one table."""
        from attnbench.suites.needle.data import TASKS

        if "-scratch-T" in task:
            return ""
        return next((task[len(name) + 1:] for name in sorted(TASKS, key=len, reverse=True)
                     if task.startswith(f"{name}-")), "")

    def mechanism_overrides(self, profile: str) -> dict[str, Any]:
        # Width 64 in smoke: two heads of 32 (eight heads of 8 learn retrieval far more slowly).
        return {"num_heads": 2} if profile == "smoke" else {}

    def default_budget(self, profile: str, task: Task) -> Budget:
        """Scratch: what mha spends in `train_steps_for_default_budget` steps. Pretrained: prompt tokens read."""
        spec = NeedleTask.from_config(task.config)
        if spec.mode == "pretrained":
            return Budget("tokens", float(sum(spec.lengths) * len(spec.depths) * spec.samples_per_point))
        from attnbench.lm import training_step_flops
        from attnbench.mechanisms.mha import SPEC as MHA
        from attnbench.suites.needle.scratch import model_config
        from attnbench.suites.needle.tokenizer import default_tokenizer

        config = model_config(spec, len(default_tokenizer()))
        per_step = training_step_flops(config, MHA, MHA.hparams(profile, self.mechanism_overrides(profile)),
                                       spec.batch_size,
                                       seq_len=spec.train_length - 1)
        return Budget("flops", float(per_step * spec.train_steps_for_default_budget))

    def budget_for(self, profile: str, task: Task, override: Budget | None) -> Budget:
        """`--budget` limits training; pretrained cells train nothing and always count the tokens they read."""
        if task.config["mode"] == "pretrained":
            return self.default_budget(profile, task)
        return super().budget_for(profile, task, override)

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        task = NeedleTask.from_config(cell.task_config)
        if task.mode == "pretrained":
            from attnbench.suites.needle.pretrained import evaluate_pretrained

            return evaluate_pretrained(task, mechanism, dict(cell.hparams), cell.budget, cell.seed, ctx)
        from attnbench.suites.needle.scratch import train_and_evaluate

        return train_and_evaluate(task, mechanism, dict(cell.hparams), cell.budget, cell.seed, ctx)
