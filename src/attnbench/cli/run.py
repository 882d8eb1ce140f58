"""`attnbench run`: a suite or group over mechanisms and seeds under a budget."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from attnbench.cli.options import (
    MAX_SEEDS,
    db_option,
    finite_seconds,
    memory_limit,
    parse_assignments,
)
from attnbench.run.config import RunConfig, load_run_config
from attnbench.run.isolation import CellLimits

if TYPE_CHECKING:
    from attnbench.run.planning import RunRequest


def _resume_command() -> str:
    """This command line with --resume: what finishes an interrupted run."""
    args = sys.argv[1:]
    if not args or args[0] != "run":
        return "the same `attnbench run` command with --resume"
    return shlex.join(["attnbench", *args, *([] if "--resume" in args else ["--resume"])])


@click.command("run")
@click.option(
    "--suite",
    "-s",
    "suite",
    default=None,
    help="A suite or a group (long-context, smoke, all); required here or in --config.",
)
@click.option(
    "--mechanism",
    "-m",
    "mechanisms",
    multiple=True,
    help="Mechanism to run (repeatable); default: every registered one the suite accepts.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1, max=MAX_SEEDS),
    default=None,
    help="Seeds 0..N-1, one cell each per task and mechanism (default: the suite's).",
)
@click.option(
    "--budget", "budget", default=None, help="Budget per cell, e.g. 2e11 (default: the suite's)."
)
@click.option(
    "--budget-kind",
    type=click.Choice(["flops", "steps", "seconds", "tokens"]),
    default=None,
    help="[default: flops]",
)
@click.option(
    "--profile",
    default=None,
    help="smoke, paper, ... (default: smoke without a GPU, paper with one).",
)
@click.option(
    "--hparam",
    "hparams",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a hyper-parameter on every selected mechanism that has it (repeatable).",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change a task setting of the suite, e.g. seq_len=64 for MQAR (repeatable).",
)
@click.option(
    "--model",
    default=None,
    metavar="PATH_OR_ID",
    help="A Hugging Face checkpoint (local folder or cached hub id) for pretrained mechanisms.",
)
@click.option(
    "--backend",
    type=click.Choice(["native", "lm-eval"]),
    default=None,
    help=(
        "Who evaluates: the suite's own code, or lm-eval's tasks of the same benchmark through its "
        "Hugging Face wrapper (longbench; lm-eval's variant differs from the official one) "
        "[default: native]."
    ),
)
@click.option("--device", default=None, help="cpu or cuda[:N] (default: cuda when available).")
@db_option
@click.option(
    "--resume", is_flag=True, help="Skip cells already done with the same config, budget and seed."
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help=(
        "Cells run at once, each in its own worker process with its share of the CPU threads "
        "(default: one per CPU core on the CPU, 1 on a GPU)."
    ),
)
@click.option(
    "--allow-nonconforming",
    is_flag=True,
    help="Run mechanisms that fail `attnbench check` anyway; the failure is recorded on each cell.",
)
@click.option(
    "--isolate",
    is_flag=True,
    help=(
        "Run every cell, and every mechanism's conformance check, in a fresh process of its own: a "
        "segfault, hang or out-of-memory is recorded as that cell's result (or that mechanism's "
        "refusal) and the others go on."
    ),
)
@click.option(
    "--cell-timeout",
    type=float,
    callback=finite_seconds,
    default=None,
    metavar="SECONDS",
    help=(
        "Kill a cell (or a conformance check) that runs longer and record it as `timeout` "
        "(implies --isolate)."
    ),
)
@click.option(
    "--memory-limit",
    callback=memory_limit,
    default=None,
    metavar="BYTES",
    help=(
        "Memory per cell, e.g. 4G: address space (RLIMIT_AS) on the CPU, the share of the GPU's"
        " memory on CUDA; a cell that needs more is recorded as `oom` (implies --isolate)."
    ),
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where cells run: worker processes here, or tasks on a Ray cluster.",
)
@click.option(
    "--address", default=None, help="The Ray cluster to join (default: start a local instance)."
)
@click.option(
    "--config",
    "config_path",
    default=None,
    metavar="FILE.toml",
    help="Run options from a TOML file; options on the command line win.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Plan and print the cells, check the mechanisms, run and store nothing.",
)
def run_command(**options: Any) -> int:
    """Run a suite (or group) over mechanisms and seeds under a fixed budget.

    \b
    attnbench run --suite long-context --profile smoke
    attnbench run --suite mqar -m mha -m linear --seeds 3 --budget 2e12
    attnbench run --suite mqar --budget 500 --budget-kind steps --hparam num_heads=2
    attnbench run --suite mqar -m mha --set seq_len=64 --set num_kv_pairs=8
    attnbench run --suite long-context --jobs 2
    attnbench run --suite needle -m dense -m streaming --model ./tiny-llama
    attnbench run --suite longbench -m dense --backend lm-eval --model ./llama --set data_dir=data/
    attnbench run --suite mqar --isolate --cell-timeout 600 --memory-limit 8G
    attnbench run --suite mqar --executor ray --address 10.0.0.5:6379
    attnbench run --config runs/long-context.toml --dry-run

    Ctrl-C stops after the cells in flight (a second one aborts them); the same command with
    --resume then runs what is missing, after a crash too.
    """
    return run(RunOptions(**options))


@dataclass(frozen=True)
class RunOptions:
    """`attnbench run`'s options as given: None (or empty) where the command line left them to
    --config."""

    suite: str | None
    mechanisms: tuple[str, ...]
    seeds: int | None
    budget: str | None
    budget_kind: str | None
    profile: str | None
    hparams: tuple[str, ...]
    settings: tuple[str, ...]
    model: str | None
    backend: str | None
    device: str | None
    db: str | None
    resume: bool
    jobs: int | None
    allow_nonconforming: bool
    isolate: bool
    cell_timeout: float | None
    memory_limit: int | None
    executor: str
    address: str | None
    config_path: str | None
    dry_run: bool

    @property
    def limits(self) -> CellLimits:
        return CellLimits(self.cell_timeout, self.memory_limit)

    @property
    def isolated(self) -> bool:
        """Whether cells, and conformance checks, run in fresh processes."""
        return bool(self.isolate or self.limits or self.executor == "ray")


def request_from(options: RunOptions, config: RunConfig) -> RunRequest:
    """The run request: the command line's options over the --config file's."""
    from attnbench.run.planning import RunRequest

    suite = options.suite if options.suite is not None else config.suite
    if not suite:
        raise click.UsageError("--suite is required (or `suite = ...` in --config)")
    if options.executor == "ray" and (options.isolate or options.limits):
        raise click.UsageError(
            "--isolate, --cell-timeout and --memory-limit belong to the local executor; "
            "Ray runs every cell in a worker of its own"
        )
    return RunRequest(
        suite=suite,
        mechanisms=tuple(options.mechanisms) or config.mechanisms,
        seeds=options.seeds if options.seeds is not None else config.seeds,
        budget_value=options.budget if options.budget is not None else config.budget,
        budget_kind=options.budget_kind or config.budget_kind or "flops",
        profile=options.profile if options.profile is not None else config.profile,
        hparams={**config.hparams, **parse_assignments(options.hparams, "--hparam")},
        task_settings={**config.settings, **parse_assignments(options.settings, "--set")},
        resume=options.resume,
        model=options.model or config.model,
        backend=options.backend or config.backend or "native",
    )


def run(options: RunOptions) -> int:
    """Plan, open the store, screen the mechanisms, run and report; the exit status."""
    # imported on use, so that `attnbench --help` imports neither torch nor the store
    from attnbench.run.planning import default_jobs, plan_run
    from attnbench.run.ray_executor import import_ray
    from attnbench.run.runner import run_plan
    from attnbench.run.screening import screen_plan
    from attnbench.store.database import Store, resolve_url
    from attnbench.views.console import RichReporter, print_plan, print_summary

    config = load_run_config(options.config_path) if options.config_path else RunConfig()
    request = request_from(options, config)
    plan = plan_run(request, device=options.device or config.device)
    db, jobs = options.db or config.db, options.jobs or config.jobs or default_jobs(plan.device)
    if options.executor == "ray":
        import_ray()  # a clear line now, not after the run is recorded
    # The database is opened before the (slow) conformance checks, so that one that cannot be opened
    # is one line at once; a dry run stores nothing and creates no database.
    store = None if options.dry_run else Store.open(db)
    plan = screen_plan(
        plan,
        requested=set(request.mechanisms),
        allow_nonconforming=options.allow_nonconforming,
        isolated=options.isolated,
        limits=options.limits,
        jobs=jobs,
    )
    if store is None:
        print_plan(plan, resolve_url(db))
        click.echo(f"dry run: {len(plan.cells)} cells planned; nothing was run or stored")
        return 0
    print_plan(plan, store.url)
    reporter = RichReporter()
    try:
        with reporter:
            summary = run_plan(
                plan,
                store,
                resume=options.resume,
                reporter=reporter,
                jobs=jobs,
                isolate=options.isolate,
                limits=options.limits,
                executor=options.executor,
                address=options.address,
            )
    except KeyboardInterrupt:
        summary = None
    if summary is None or summary.interrupted:
        click.echo(
            f"interrupted: finished cells are stored; to run the rest: {_resume_command()}",
            err=True,
        )
        return 143 if summary is not None and summary.terminated else 130
    print_summary(summary, store.url)
    if summary.crashed_runs:
        click.echo(
            f"note: run {', '.join(map(str, summary.crashed_runs))} had died without finishing; "
            "marked crashed",
            err=True,
        )
    return 0 if summary.ok else 1
