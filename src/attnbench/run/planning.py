"""Turning `attnbench run` options into the plan: suites or groups x mechanisms x tasks (one budget
each) x seeds, one cell each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from attnbench.budget import Budget
from attnbench.cell import CellSpec
from attnbench.errors import ConfigError, UnknownNameError
from attnbench.registry import MECHANISMS, SUITES
from attnbench.store.storable import check_cell
from attnbench.suite import BACKENDS, DEFAULT_BACKEND

ALL_GROUP = "all"
# Seeds per task and mechanism: far beyond any study, short of a plan that never finishes planning.
MAX_SEEDS = 1000
MAX_CELLS = 100_000  # cells per run, counted before any is built


@dataclass(frozen=True)
class RunRequest:
    suite: str
    mechanisms: tuple[str, ...] = ()
    seeds: int | None = None
    budget_value: float | str | None = None
    budget_kind: str = "flops"
    profile: str | None = None
    hparams: Mapping[str, Any] = field(default_factory=dict)
    task_settings: Mapping[str, Any] = field(default_factory=dict)
    resume: bool = False
    model: str | None = (
        None  # a pretrained checkpoint, for suites that take `pretrained` mechanisms
    )
    backend: str = (
        DEFAULT_BACKEND  # whose code evaluates the cells: the suite's own, or lm-eval's tasks
    )


@dataclass
class Plan:
    profile: str
    device: str
    suites: list[str]
    mechanisms: list[str]
    cells: list[CellSpec]
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        budgets = sorted({(c.suite, c.task, c.budget.kind, c.budget.value) for c in self.cells})
        return {
            "profile": self.profile,
            "device": self.device,
            "suites": self.suites,
            "mechanisms": self.mechanisms,
            "seeds": sorted({c.seed for c in self.cells}),
            "budgets": [{"suite": s, "task": t, "kind": k, "value": v} for s, t, k, v in budgets],
            "n_cells": len(self.cells),
            "notes": self.notes,
        }


def groups() -> dict[str, list[str]]:
    """Every group name with its suites: the groups suites declare, plus `all`."""
    loaded, _ = SUITES.load_all()
    found: dict[str, list[str]] = {ALL_GROUP: sorted(loaded)}
    for name, suite in sorted(loaded.items()):
        for group in suite.groups:
            found.setdefault(group, []).append(name)
    return found


def resolve_suites(name: str) -> list[Any]:
    """A suite by name, or the suites of a group; unknown names get close matches from both."""
    if name in SUITES.names():
        return [SUITES.get(name)]
    known_groups = groups()
    if name in known_groups:
        return [SUITES.get(member) for member in known_groups[name]]
    raise UnknownNameError(
        SUITES.unknown_message(name).replace("unknown suite", "unknown suite or group", 1)
        + f"; groups: {', '.join(sorted(known_groups))}"
    )


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(device: str) -> str:
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"--device {device!r} is not a torch device (expected cpu or cuda[:N]): {exc}"
        ) from None
    if parsed.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: attnbench runs on cpu or cuda[:N]")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {device!r} asked for, but this machine has no usable CUDA device"
        )
    return device


def default_jobs(device: str) -> int:
    """Cells at once: one per core on the CPU (each worker gets one thread), one on a GPU."""
    import os

    return 1 if device.startswith("cuda") else max(1, os.cpu_count() or 1)


def default_profile(device: str, suite_or_group: str) -> str:
    if suite_or_group == "smoke":
        return "smoke"
    return "paper" if device.startswith("cuda") else "smoke"


def _mechanisms_for(suite: Any, request: RunRequest, notes: list[str]) -> list[Any]:
    if request.mechanisms:
        chosen = [
            MECHANISMS.get(name) for name in dict.fromkeys(request.mechanisms)
        ]  # `-m mha -m mha` is mha
        accepted = [m for m in chosen if m.kind in suite.accepts]
        for m in chosen:
            if m.kind not in suite.accepts:
                notes.append(
                    f"{suite.name} skips {m.name}: it takes {'/'.join(suite.accepts)} mechanisms, "
                    f"{m.name} is {m.kind}"
                )
        return accepted
    loaded, errors = MECHANISMS.load_all()
    for name, error in errors.items():
        notes.append(f"skipped plug-in {name}: {error}")
    return [m for _, m in sorted(loaded.items()) if m.kind in suite.accepts]


def cell_hparams(
    mechanism: Any, suite: Any, profile: str, explicit: Mapping[str, Any]
) -> dict[str, Any]:
    """Paper defaults < the suite's overrides < the mechanism's own profile defaults < the
    user's."""
    base = mechanism.hparams(profile)
    pinned = mechanism.profile_defaults.get(profile, {})
    suite_set = {
        k: v for k, v in suite.mechanism_overrides(profile).items() if k in base and k not in pinned
    }
    user_set = {k: v for k, v in explicit.items() if k in base}
    return mechanism.hparams(profile, {**suite_set, **user_set})


def _settings_for(
    suite: Any, profile: str, settings: Mapping[str, Any], in_group: bool, notes: list[str]
) -> dict[str, Any]:
    """The `--set` values a suite takes. In a group a setting may belong to only some of its suites
    (the others say so in a note); planning checks that every setting belongs to at least one."""
    if not in_group:
        return dict(settings)
    known = suite.settings(profile)
    ignored = sorted(set(settings) - known)
    if ignored:
        notes.append(f"{suite.name} has no setting {', '.join(ignored)}; it runs without")
    return {k: v for k, v in settings.items() if k in known}


def check_backend(backend: str, suites: list[Any]) -> None:
    """Every selected suite offers `backend`; else one line naming the suites that do not."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}")
    lacking = [
        f"suite {s.name!r} offers only {', '.join(s.backends)}"
        for s in suites
        if backend not in s.backends
    ]
    if lacking:
        raise ConfigError(f"--backend {backend}: {'; '.join(lacking)}")


def plan_run(request: RunRequest, device: str | None = None) -> Plan:
    device = check_device(device) if device else default_device()
    profile = (
        request.profile if request.profile is not None else default_profile(device, request.suite)
    )
    if not profile.strip():
        raise ConfigError("--profile '' is empty; name a profile such as smoke or paper")
    if request.seeds is not None and not 1 <= request.seeds <= MAX_SEEDS:
        raise ConfigError(f"--seeds {request.seeds} must be between 1 and {MAX_SEEDS}")
    budget_override = (
        Budget.parse(request.budget_kind, request.budget_value)
        if request.budget_value is not None
        else None
    )
    suites = resolve_suites(request.suite)
    for suite in suites:
        suite.check_profile(profile)
    check_backend(request.backend, suites)
    if len(suites) > 1:
        orphans = sorted(
            set(request.task_settings) - set().union(*(s.settings(profile) for s in suites))
        )
        if orphans:
            raise ConfigError(
                f"--set {orphans[0]}: no suite of {request.suite!r} has such a task setting "
                f"({', '.join(s.name for s in suites)})"
            )
    notes: list[str] = []
    cells: list[CellSpec] = []
    used_mechanisms: list[str] = []
    considered = False  # some mechanism of an accepted kind was offered to a suite's tasks
    planned = 0
    for suite in suites:
        mechanisms = _mechanisms_for(suite, request, notes)
        considered = considered or bool(mechanisms)
        seeds = range(request.seeds if request.seeds is not None else suite.default_seeds(profile))
        tasks = suite.tasks(profile)
        planned += len(mechanisms) * len(tasks) * len(seeds)
        if planned > MAX_CELLS:
            raise ConfigError(
                f"this run would plan more than {MAX_CELLS:,} cells; run fewer seeds, mechanisms or"
                " suites at a time"
            )
        settings = _settings_for(suite, profile, request.task_settings, len(suites) > 1, notes)
        if request.model is not None:
            if "pretrained" in suite.accepts:
                settings["model"] = request.model
            else:
                notes.append(f"{suite.name} ignores --model: it trains its models from scratch")
        if request.backend != DEFAULT_BACKEND:
            settings["backend"] = (
                request.backend
            )  # a task setting, so it is part of every cell's config
        if settings:
            tasks = [suite.configure(task, settings) for task in tasks]
        for mechanism in mechanisms:
            hparams = cell_hparams(mechanism, suite, profile, request.hparams)
            paired = []
            for task in tasks:
                ok, note = suite.pairs_with(task, mechanism)
                if ok:
                    paired.append(task)
                elif note and note not in notes:
                    notes.append(note)
            if paired:
                used_mechanisms.append(mechanism.name)
            for task in paired:
                budget = suite.budget_for(profile, task, budget_override)
                for seed in seeds:
                    cell = CellSpec(
                        suite.name,
                        mechanism.name,
                        profile,
                        task.label,
                        dict(task.config),
                        hparams,
                        budget,
                        seed,
                        suite.version,
                        suite.primary_metric,
                        suite.higher_is_better,
                    )
                    check_cell(cell)
                    cells.append(cell)
    unused = [k for k in request.hparams if not any(k in c.hparams for c in cells)]
    if unused:
        raise ConfigError(
            f"--hparam {', '.join(unused)}: no selected mechanism has such a hyper-parameter"
        )
    if request.model is not None and not any("pretrained" in s.accepts for s in suites):
        raise ConfigError(
            f"--model {request.model!r}: no selected suite runs pretrained models "
            f"({', '.join(s.name for s in suites)} train from scratch)"
        )
    if not cells:
        why = (
            "no selected mechanism pairs with its tasks"
            if considered
            else "no registered mechanism of a kind it accepts"
        )
        raise ConfigError(
            f"nothing to run for suite {request.suite!r}: {why}"
            + (f" ({'; '.join(notes)})" if notes else "")
        )
    unique = list(
        {cell.resume_key: cell for cell in cells}.values()
    )  # one cell once, however it was asked for
    return Plan(
        profile, device, [s.name for s in suites], sorted(set(used_mechanisms)), unique, notes
    )
