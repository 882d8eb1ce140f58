"""The `attnbench` command: a thin layer that parses, calls the library, and prints.

Kept free of torch at import time so that `attnbench --help` and `attnbench list` start fast.
Bad input becomes one line on stderr and exit status 2; a run with a failed cell exits 1.
"""
from __future__ import annotations

import ast
import json
import sys
from contextlib import contextmanager

import click

from attnbench import __version__
from attnbench.errors import AttnbenchError, ConfigError, UnknownNameError

MAX_SEEDS = 1000  # attnbench.planning.MAX_SEEDS, repeated so that parsing options imports nothing

EXIT_BAD_INPUT = 2

db_option = click.option("--db", default=None,
                         help="SQLAlchemy URL or SQLite path (default: $ATTNBENCH_DB or results/attnbench.db).")


def _fail(message: str) -> None:
    click.echo(f"attnbench: error: {message}", err=True)


def _open_for_reading(db: str | None):
    """The store for a read command; a damaged SQLite file is read with a warning (what reads is shown)."""
    from attnbench.store import Store

    store = Store.open(db, create=False)
    if store.damage:
        click.echo(f"attnbench: warning: database {store.url} is damaged ({store.damage}); results may be "
                   f"missing or wrong", err=True)
    return store


@contextmanager
def _writing(path: str, what: str):
    """A file the user named, written: an OSError (a folder, /dev/full, no permission) is one line naming it."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write it ({exc.strerror or exc})") from None


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the status code."""
    try:
        result = cli.main(args=argv, prog_name="attnbench", standalone_mode=False)
    except click.exceptions.UsageError as exc:
        _fail(exc.format_message().replace("\n", " "))
        code = EXIT_BAD_INPUT
    except click.exceptions.Abort:
        code = 130
    except AttnbenchError as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        code = EXIT_BAD_INPUT
    else:
        code = result if isinstance(result, int) else 0
    if argv is None:
        sys.exit(code)
    return code


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="attnbench", message="%(prog)s %(version)s")
def cli() -> None:
    """Budget-matched, reproducible benchmarking of attention mechanisms.

    \b
    attnbench list mechanisms                       what is registered
    attnbench run --suite long-context              run a suite or group
    attnbench leaderboard                           rank what the store holds
    """


# ---------------------------------------------------------------- list

@cli.command("list")
@click.argument("what", type=click.Choice(["mechanisms", "suites", "groups"]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--load", is_flag=True, help="Import every plug-in to show its kind and details (imports torch).")
def list_command(what: str, as_json: bool, load: bool) -> int:
    """List registered mechanisms, suites or suite groups.

    \b
    attnbench list mechanisms
    attnbench list suites --load --json
    """
    from attnbench.listing import list_groups, list_plugins

    rows = list_groups() if what == "groups" else list_plugins(what, load)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    from attnbench.console import print_rows

    print_rows(what, rows)
    return 0


# ---------------------------------------------------------------- run

def _parse_assignments(values: tuple[str, ...], option: str) -> dict:
    """KEY=VALUE pairs, each VALUE a Python literal (`4`, `0.1`, `[64, 128]`, `'text'`), true/false, or else text;
    whether it fits the setting is checked at planning against the setting's default."""
    parsed = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        if raw.strip().lower() in ("true", "false"):  # as a shell user types a flag, not only Python's True
            parsed[key] = raw.strip().lower() == "true"
            continue
        try:
            parsed[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            parsed[key] = raw
    return parsed


def _finite_seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value} is not a finite number of seconds above 0", ctx=ctx, param=param)
    return value


def _memory_limit(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from attnbench.isolation import parse_bytes

    try:
        return None if value is None else parse_bytes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param)


def _resume_command() -> str:
    """This command line with --resume: what finishes an interrupted run."""
    import shlex

    args = sys.argv[1:]
    if not args or args[0] != "run":
        return "the same `attnbench run` command with --resume"
    return shlex.join(["attnbench", *args, *([] if "--resume" in args else ["--resume"])])


@cli.command("run")
@click.option("--suite", "-s", "suite", default=None,
              help="A suite or a group (long-context, smoke, all); required here or in --config.")
@click.option("--mechanism", "-m", "mechanisms", multiple=True,
              help="Mechanism to run (repeatable); default: every registered one the suite accepts.")
@click.option("--seeds", type=click.IntRange(min=1, max=MAX_SEEDS), default=None,
              help="Seeds 0..N-1 per cell (default: the suite's).")
@click.option("--budget", "budget", default=None, help="Budget per cell, e.g. 2e11 (default: the suite's).")
@click.option("--budget-kind", type=click.Choice(["flops", "steps", "seconds", "tokens"]), default=None,
              help="[default: flops]")
@click.option("--profile", default=None, help="smoke, paper, ... (default: smoke without a GPU, paper with one).")
@click.option("--hparam", "hparams", multiple=True, metavar="KEY=VALUE",
              help="Set a hyper-parameter on every selected mechanism that has it (repeatable).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Change a task setting of the suite, e.g. seq_len=64 for MQAR (repeatable).")
@click.option("--model", default=None, metavar="PATH_OR_ID",
              help="A Hugging Face checkpoint (local folder or cached hub id) for pretrained mechanisms.")
@click.option("--backend", type=click.Choice(["native", "lm-eval"]), default=None,
              help="Who evaluates: the suite's own code, or lm-eval's tasks of the same benchmark through its "
                   "Hugging Face wrapper (longbench; lm-eval's variant differs from the official one) "
                   "[default: native].")
@click.option("--device", default=None, help="cpu or cuda[:N] (default: cuda when available).")
@db_option
@click.option("--resume", is_flag=True, help="Skip cells already done with the same config, budget and seed.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Cells run at once, each in its own worker process with its share of the CPU threads "
                   "(default: one per CPU core on the CPU, 1 on a GPU).")
@click.option("--allow-nonconforming", is_flag=True,
              help="Run mechanisms that fail `attnbench check` anyway; the failure is recorded on each cell.")
@click.option("--isolate", is_flag=True,
              help="Run every cell, and every mechanism's conformance check, in a fresh process of its own: a "
                   "segfault, hang or out-of-memory is recorded as that cell's result (or that mechanism's "
                   "refusal) and the others go on.")
@click.option("--cell-timeout", type=float, callback=_finite_seconds, default=None, metavar="SECONDS",
              help="Kill a cell (or a conformance check) that runs longer and record it as `timeout` "
                   "(implies --isolate).")
@click.option("--memory-limit", callback=_memory_limit, default=None, metavar="BYTES",
              help="Memory per cell, e.g. 4G: address space (RLIMIT_AS) on the CPU, the share of the GPU's memory "
                   "on CUDA; a cell that needs more is recorded as `oom` (implies --isolate).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where cells run: worker processes here, or tasks on a Ray cluster.")
@click.option("--address", default=None, help="The Ray cluster to join (default: start a local instance).")
@click.option("--config", "config_path", default=None, metavar="FILE.toml",
              help="Run options from a TOML file; options on the command line win.")
@click.option("--dry-run", is_flag=True, help="Plan and print the cells, check the mechanisms, run and store nothing.")
def run_command(suite, mechanisms, seeds, budget, budget_kind, profile, hparams, settings, model, backend, device, db,
                resume, jobs, allow_nonconforming, isolate, cell_timeout, memory_limit, executor, address,
                config_path, dry_run) -> int:
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
    from attnbench.planning import RunRequest, default_jobs, plan_run
    from attnbench.run_config import RunConfig, load_run_config

    config = load_run_config(config_path) if config_path else RunConfig()
    suite = suite if suite is not None else config.suite
    if not suite:
        raise click.UsageError("--suite is required (or `suite = ...` in --config)")
    mechanisms = tuple(mechanisms) or config.mechanisms
    request = RunRequest(suite=suite, mechanisms=mechanisms, seeds=seeds if seeds is not None else config.seeds,
                         budget_value=budget if budget is not None else config.budget,
                         budget_kind=budget_kind or config.budget_kind or "flops",
                         profile=profile if profile is not None else config.profile,
                         hparams={**config.hparams, **_parse_assignments(hparams, "--hparam")},
                         task_settings={**config.settings, **_parse_assignments(settings, "--set")}, resume=resume,
                         model=model or config.model, backend=backend or config.backend or "native")
    if executor == "ray" and (isolate or cell_timeout or memory_limit):
        raise click.UsageError("--isolate, --cell-timeout and --memory-limit belong to the local executor; "
                               "Ray runs every cell in a worker of its own")
    plan = plan_run(request, device=device or config.device)
    db, jobs = db or config.db, jobs or config.jobs or default_jobs(plan.device)
    if executor == "ray":
        from attnbench.ray_executor import import_ray

        import_ray()  # a clear line now, not after the run is recorded
    from attnbench.conformance import screen_plan
    from attnbench.console import RichReporter, print_plan, print_summary
    from attnbench.isolation import CellLimits
    from attnbench.store import Store, resolve_url

    # The database is opened before the (slow) conformance checks, so that one that cannot be opened is one line
    # at once; a dry run stores nothing and creates no database.
    store = None if dry_run else Store.open(db)
    limits = CellLimits(cell_timeout, memory_limit)
    plan = screen_plan(plan, requested=set(mechanisms), allow_nonconforming=allow_nonconforming,
                       isolated=bool(isolate or limits or executor == "ray"), limits=limits, jobs=jobs)
    if store is None:
        print_plan(plan, resolve_url(db))
        click.echo(f"dry run: {len(plan.cells)} cells planned; nothing was run or stored")
        return 0
    from attnbench.runner import run_plan

    print_plan(plan, store.url)
    reporter = RichReporter()
    try:
        with reporter:
            summary = run_plan(plan, store, resume=resume, reporter=reporter, jobs=jobs, isolate=isolate,
                               limits=limits, executor=executor, address=address)
    except KeyboardInterrupt:
        summary = None
    if summary is None or summary.interrupted:
        click.echo(f"interrupted: finished cells are stored; to run the rest: {_resume_command()}", err=True)
        return 143 if summary is not None and summary.terminated else 130
    print_summary(summary, store.url)
    if summary.crashed_runs:
        click.echo(f"note: run {', '.join(map(str, summary.crashed_runs))} had died without finishing; "
                   f"marked crashed", err=True)
    return 0 if summary.ok else 1


# ---------------------------------------------------------------- check

@cli.command("check")
@click.argument("mechanisms", nargs=-1)
@click.option("--profile", default="smoke", show_default=True, help="Whose profile defaults to check with.")
@click.option("--hparam", "hparams", multiple=True, metavar="KEY=VALUE", help="Check with this hyper-parameter.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def check_command(mechanisms: tuple[str, ...], profile: str, hparams: tuple[str, ...], as_json: bool) -> int:
    """Conformance: shape and dtype, no causal leak, gradients, determinism, FLOPs, cache.

    Exits 1 when a mechanism fails. With no names, checks every registered sequence,
    feature_map and fusion mechanism.

    \b
    attnbench check mha moba
    attnbench check sliding_window --hparam window=4
    """
    from attnbench.conformance import check_mechanism
    from attnbench.registry import MECHANISMS

    if mechanisms:
        specs = [MECHANISMS.get(name) for name in mechanisms]
    else:
        loaded, errors = MECHANISMS.load_all()
        for name, error in errors.items():
            click.echo(f"attnbench: skipped {name}: {error}", err=True)
        specs = [spec for _, spec in sorted(loaded.items()) if spec.kind in ("sequence", "feature_map", "fusion")]
    _check_profile_exists(profile, specs)
    overrides = _parse_assignments(hparams, "--hparam")
    unused = sorted(k for k in overrides if not any(k in spec.hparams(profile) for spec in specs))
    if unused:
        raise ConfigError(f"--hparam {', '.join(unused)}: no checked mechanism has such a hyper-parameter")
    configured = [(spec, spec.hparams(profile, {k: v for k, v in overrides.items() if k in spec.hparams(profile)}))
                  for spec in specs]  # every value checked against its default before any check runs
    reports = [check_mechanism(spec, hparams=params, profile=profile) for spec, params in configured]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        from attnbench.console import print_conformance

        print_conformance(reports)
    return 0 if all(r.passed for r in reports) else 1


def _check_profile_exists(profile: str, specs: list) -> None:
    """A profile some suite or checked mechanism knows; a typo would otherwise check paper defaults silently."""
    from attnbench.registry import SUITES

    suites, _ = SUITES.load_all()
    known = {p for suite in suites.values() for p in suite.profiles} | {p for s in specs for p in s.profile_defaults}
    if profile not in known:
        raise ConfigError(f"--profile {profile!r} is not a profile of any suite or checked mechanism "
                          f"(profiles: {', '.join(sorted(known))})")


# ---------------------------------------------------------------- compare

@cli.command("compare")
@click.option("--baseline", required=True, help="Database URL or path, or an exported .parquet/.csv/.json file.")
@click.option("--db", default=None, help="The current results (default: $ATTNBENCH_DB or results/attnbench.db).")
@click.option("--tolerance", type=float, default=0.02, show_default=True,
              help="Relative change a significant regression must exceed to fail.")
@click.option("--markdown", "markdown_path", default=None,
              help="Also append a Markdown summary to this file (PR comment, CI summary).")
@click.option("--allow-missing", is_flag=True,
              help="Pass when baseline cells have no match (or nothing matches); by default that fails the gate.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def compare_command(baseline: str, db: str | None, tolerance: float, markdown_path: str | None, allow_missing: bool,
                    as_json: bool) -> int:
    """Compare current results with a baseline; exit 1 on a significant regression beyond the tolerance, or when
    baseline cells have no match in the current results (a changed default changes every config hash).

    \b
    attnbench compare --baseline results/baseline.parquet
    attnbench compare --baseline sqlite:///main.db --tolerance 0.05 --markdown "$GITHUB_STEP_SUMMARY"
    attnbench compare --baseline results/baseline.parquet --allow-missing
    """
    from attnbench import results
    from attnbench.compare import as_records, compare, load_source, outcome, to_markdown, unmatched

    base = load_source(baseline)
    current = results.load(_open_for_reading(db))
    comparisons = compare(base, current, tolerance)
    missing = unmatched(base, current)
    if markdown_path:
        with _writing(markdown_path, "--markdown"):
            with open(markdown_path, "a", encoding="utf-8") as out:
                out.write(to_markdown(comparisons, tolerance, missing, allow_missing))
    if as_json:
        click.echo(json.dumps({"comparisons": as_records(comparisons),
                               "unmatched": [vars(m) for m in missing]}, indent=2))
    else:
        from attnbench.console import print_comparisons, print_unmatched

        print_comparisons(comparisons, tolerance)
        print_unmatched(missing, allow_missing)
    return outcome(comparisons, missing, allow_missing)


# ---------------------------------------------------------------- history

@cli.command("history")
@click.option("--suite", "-s", required=True)
@click.option("--mechanism", "-m", required=True)
@click.option("--profile", default=None, help="Default: the profile of the latest cell.")
@click.option("--budget", type=float, default=None, help="Default: the budget of the latest cell.")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def history_command(suite, mechanism, profile, budget, db, as_json) -> int:
    """The primary metric over the git history of runs: a sparkline and a point per commit.

    \b
    attnbench history --suite mqar --mechanism mha
    """
    from attnbench import results
    from attnbench.history import history, sparkline

    store = _open_for_reading(db)
    metric, points, chosen = history(results.load(store), results.load_runs(store), suite, mechanism, profile, budget)
    if as_json:
        click.echo(json.dumps({"suite": suite, "mechanism": mechanism, "metric": metric, **chosen,
                               "points": [{"git_sha": p.git_sha, "dirty": p.dirty, "first_run": str(p.first_run),
                                           "mean": p.mean, "n_cells": p.n_cells} for p in points]}, indent=2))
        return 0
    from attnbench.console import print_history

    print_history(suite, mechanism, metric, chosen, points, sparkline([p.mean for p in points]))
    return 0


# ---------------------------------------------------------------- export / import

@cli.command("export")
@click.argument("out")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "json"]), default=None,
              help="Default: from OUT's extension.")
@db_option
def export_command(out: str, fmt: str | None, db: str | None) -> int:
    """Write every run, cell and metric to one file (a row per cell and metric).

    \b
    attnbench export results/baseline.parquet
    attnbench export cells.csv --db sqlite:///other.db
    """
    from attnbench.transfer import export_file

    store = _open_for_reading(db)
    with _writing(out, "export to"):
        count = export_file(store, out, fmt)
    click.echo(f"exported {count} cells to {out}")
    return 0


@cli.command("import")
@click.argument("source")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "json"]), default=None,
              help="Default: from SOURCE's extension.")
@db_option
def import_command(source: str, fmt: str | None, db: str | None) -> int:
    """Add the runs of an exported file to a database (runs it already holds are skipped).

    \b
    attnbench import results/baseline.parquet --db sqlite:///baseline.db
    """
    from attnbench.store import Store
    from attnbench.transfer import import_frame, read_file

    frame = read_file(source, fmt)  # every column checked before a database is created or touched
    runs, cells = import_frame(Store.open(db), frame)
    click.echo(f"imported {runs} runs and {cells} cells from {source}")
    return 0


# ---------------------------------------------------------------- leaderboard

@cli.command("leaderboard")
@click.option("--suite", "-s", default=None, help="Only this suite.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table", show_default=True)
@click.option("--html", "html_dir", default=None, metavar="DIR",
              help="Also render the static, self-contained HTML site into DIR.")
@db_option
def leaderboard_command(suite: str | None, fmt: str, html_dir: str | None, db: str | None) -> int:
    """Rank mechanisms: primary metric mean and 95% interval over seeds, with costs.

    Suites that score over context lengths and depths (needle) also get a length x depth grid per mechanism.

    \b
    attnbench leaderboard
    attnbench leaderboard --suite mqar --format json
    attnbench leaderboard --html site/
    """
    from attnbench import grid, leaderboard, results

    store = _open_for_reading(db)
    cells = (results.load(store, decode=False) if html_dir
             else results.load(store, columns=results.RANKING_COLUMNS, latest_only=True))
    if suite is not None and suite not in set(cells["suite"]):
        from attnbench.registry import SUITES

        if suite not in SUITES.names():
            raise UnknownNameError(SUITES.unknown_message(suite))
    if html_dir:
        from attnbench.site import render_site

        with _writing(html_dir, "--html"):
            written = render_site(cells if suite is None else cells[cells["suite"] == suite],
                                  results.load_runs(store), html_dir)
        click.echo(f"wrote {len(written)} pages to {html_dir} (open {written[0]})", err=True)
    rows = leaderboard.build(cells, suite=suite)
    grids = grid.grids(cells, suite=suite, rows=rows)
    if fmt == "json":
        click.echo(grid.leaderboard_json(rows, grids))
    elif fmt == "markdown":
        click.echo(grid.leaderboard_markdown(rows, grids))
    else:
        from attnbench.console import print_leaderboard

        print_leaderboard(rows, grids)
    return 0


# ---------------------------------------------------------------- data

@cli.command("data")
@click.argument("dataset", type=click.Choice(["eurosat"]))
@click.option("--root", required=True, metavar="DIR", help="The folder that holds the data, or will.")
@click.option("--bands", type=click.Choice(["rgb", "all"]), default="rgb", show_default=True,
              help="rgb: torchvision's RGB JPEGs; all: torchgeo's 13-band GeoTIFFs.")
@click.option("--download", is_flag=True, help="Download, check (md5) and unpack what is missing.")
def data_command(dataset: str, root: str, bands: str, download: bool) -> int:
    """Check a data set on disk: what is there (images per class and split), or exactly how to get it.

    Exits 0 when the data is there and every image reads, 1 when it is missing (the steps to get it
    are printed), 2 when a copy is damaged (a missing class folder, a corrupt image) or a download fails.

    \b
    attnbench data eurosat --root data/
    attnbench data eurosat --root data/ --bands all --download
    """
    from attnbench.suites.eurosat import data

    if download:
        for path in data.download(root, bands):
            click.echo(f"have {path}", err=True)
    elif not data.layout(root, bands).exists():
        click.echo(data.how_to_get(root, bands))
        return 1
    click.echo(data.describe(data.inventory(root, bands)))
    return 0


import attnbench.bench_cli  # noqa: E402,F401  (registers `attnbench bench`; last, as it extends `cli`)
