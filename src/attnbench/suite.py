"""The suite contract: what a suite declares so that a run can plan, budget and score its tasks.

This module must not import torch; suite objects are loaded by the planner and `attnbench list`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence, TypeVar

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.errors import ConfigError
from attnbench.values import check_like

# Whose code evaluates a cell: the suite's own (`native`), or lm-evaluation-harness's tasks for the
# same benchmark (`lm-eval`, whose variants can differ from the official protocol). A suite lists
# the ones it offers.
BACKENDS = ("native", "lm-eval")
DEFAULT_BACKEND = "native"


@dataclass(frozen=True)
class Task:
    """One configuration a suite evaluates under a profile, e.g. MQAR at length 64 with 4 pairs."""

    label: str
    config: Mapping[str, Any]


S = TypeVar("S")


def task_of(label: str, settings: Any) -> Task:
    """A task from a suite's settings dataclass, its tuples stored as lists (as JSON gives them
    back)."""
    return Task(
        label, {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
    )


def settings_from(
    cls: type[S], config: Mapping[str, Any], what: str, tuples: Iterable[str] = ()
) -> S:
    """A suite's settings dataclass from a stored or user-given config: the lists of `tuples` become
    tuples again, and an unknown or missing setting is one `ConfigError` naming `what`."""
    values = dict(config)
    for key in tuples:
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{what} task settings: {exc}") from None


def tuple_fields(cls: type) -> tuple[str, ...]:
    """The fields of a settings dataclass typed as tuples: stored as JSON lists, they come back
    as tuples."""
    return tuple(f.name for f in fields(cls) if "tuple[" in str(f.type))


class TaskSettings:
    """What a suite's task is, declared once: subclass as a frozen dataclass whose fields are the
    settings (`--set KEY=VALUE` changes them), set `suite_title` (how errors name the suite) and
    give the `label` that names a task in tables. `validate` refuses at planning a task that cannot
    exist; `normalised` first makes the settings consistent with each other. A suite that declares
    `settings_class` and `profile_tasks` gets `tasks`, `make_task` and `settings` from them."""

    suite_title: ClassVar[str] = "suite"

    @property
    def label(self) -> str:
        raise NotImplementedError

    def validate(self) -> None:
        """Raise ConfigError, naming the setting, for a task that cannot exist."""

    def normalised(self) -> TaskSettings:
        return self

    def as_task(self) -> Task:
        return task_of(self.label, self)

    @classmethod
    def from_config(cls: type[S], config: Mapping[str, Any]) -> S:
        return settings_from(cls, config, cls.suite_title, tuple_fields(cls))


@dataclass
class CellContext:
    """What the runner hands a suite for one cell: the device and a progress callback."""

    device: str = "cpu"
    on_step: Callable[[int, int | None], None] = field(default=lambda step, total: None)


class Suite(ABC):
    """Subclass, set the class attributes, implement `default_budget` and `run_cell`, and either
    declare `settings_class` and `profile_tasks` (each profile's tasks as settings instances) or
    implement `tasks` (and `make_task`) yourself."""

    name: str
    description: str
    accepts: tuple[str, ...] = ("sequence",)
    groups: tuple[str, ...] = ()
    primary_metric: str
    higher_is_better: bool = True
    profiles: tuple[str, ...] = ("smoke", "paper")
    version: str = "1"
    backends: tuple[str, ...] = (
        DEFAULT_BACKEND,
    )  # those of BACKENDS it offers; more: a task setting `backend`
    # One leaderboard table per task instead of the mean over tasks: for suites whose tasks are
    # different models or protocols (a pretrained checkpoint, a backend) or measurements that must
    # not be averaged.
    rank_per_task: bool = False
    settings_class: ClassVar[type[TaskSettings] | None] = None
    profile_tasks: ClassVar[Mapping[str, Sequence[TaskSettings]]] = {}
    fixed_settings: ClassVar[frozenset[str]] = frozenset()  # settings that `--set` may not change

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.profile_tasks and "profiles" not in cls.__dict__:
            cls.profiles = tuple(cls.profile_tasks)

    def table_of(self, task: str) -> str:
        """The leaderboard table a cell of task `task` ranks in, beside its suite, profile and
        budget: "" (the default) averages the suite's tasks in one table, `rank_per_task` gives each
        task its own; a suite whose task labels name a model can split by that alone."""
        return task if self.rank_per_task else ""

    def check_profile(self, profile: str) -> None:
        if profile not in self.profiles:
            raise ConfigError(
                f"suite {self.name!r} has no profile {profile!r} (profiles:"
                f" {', '.join(self.profiles)})"
            )

    def tasks(self, profile: str) -> list[Task]:
        """The task configurations this profile evaluates; each gives one cell per mechanism and
        seed."""
        if self.settings_class is None:
            raise NotImplementedError(
                f"suite {self.name!r} declares no settings_class: implement tasks()"
            )
        self.check_profile(profile)
        return [task.as_task() for task in self.profile_tasks[profile]]

    def task_settings(self, config: Mapping[str, Any]) -> Any:
        """A task's config (a cell's `task_config`) as the suite's settings dataclass."""
        return self.settings_class.from_config(config)

    @abstractmethod
    def default_budget(self, profile: str, task: Task) -> Budget:
        """The budget a cell of this task gets when the user names none."""

    def budget_for(self, profile: str, task: Task, override: Budget | None) -> Budget:
        """The budget of a cell: the user's (`--budget`) or this suite's default for the task."""
        return override or self.default_budget(profile, task)

    def settings(self, profile: str) -> set[str]:
        """Names `--set` may change: the settings dataclass's fields, else the keys of this
        profile's tasks."""
        if self.settings_class is not None:
            return {f.name for f in fields(self.settings_class)} - self.fixed_settings
        return {key for task in self.tasks(profile) for key in task.config}

    def configure(self, task: Task, overrides: Mapping[str, Any]) -> Task:
        """The task with some settings changed by the user (`--set KEY=VALUE`), validated."""
        unknown = sorted(set(overrides) - set(task.config))
        if unknown:
            raise ConfigError(
                f"suite {self.name!r} has no task setting {unknown[0]!r} "
                f"(settings: {', '.join(sorted(task.config))})"
            )
        for key, value in overrides.items():
            check_like(task.config[key], value, f"suite {self.name!r}: --set {key}")
        changed = ",".join(f"{k}={overrides[k]}" for k in sorted(overrides))
        return self.make_task({**task.config, **overrides}, f"{task.label}[{changed}]")

    def make_task(self, config: Mapping[str, Any], label: str) -> Task:
        """A task from its configuration: the settings dataclass's, normalised, validated and
        labelled by it; without one, the config as given under `label`."""
        if self.settings_class is None:
            return Task(label, dict(config))
        settings = self.settings_class.from_config(config).normalised()
        settings.validate()
        return settings.as_task()

    def pairs_with(self, task: Task, mechanism: Any) -> tuple[bool, str | None]:
        """Whether `mechanism` runs on `task`, and a note for the user when it is left out for a
        reason they can fix (a suite whose tasks differ by mechanism kind, e.g. trained vs
        pretrained)."""
        return True, None

    def default_seeds(self, profile: str) -> int:
        return 3

    def mechanism_overrides(self, profile: str) -> Mapping[str, Any]:
        """Hyper-parameters this suite sets for every mechanism that has them (e.g. one head for
        MQAR)."""
        return {}

    @abstractmethod
    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        """Train and evaluate one cell under `cell.budget`; raise on failure."""

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "accepts": list(self.accepts),
            "groups": list(self.groups),
            "primary_metric": self.primary_metric,
            "higher_is_better": self.higher_is_better,
            "profiles": list(self.profiles),
        }
