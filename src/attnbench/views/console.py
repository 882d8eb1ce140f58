"""Everything the CLI draws with rich: tables, the plan, the progress bar and the run summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from attnbench.cell import CellRecord, CellSpec

if TYPE_CHECKING:
    from attnbench.run.planning import Plan

console = Console()
if (
    not console.is_terminal
):  # logs and pipes: wide enough for a leaderboard, not the 80-column default
    console = Console(width=140)
errors = Console(stderr=True)


def print_rows(what: str, rows: list[dict[str, Any]]) -> None:
    if what == "groups":
        table = Table("group", "suites", title="suite groups", title_justify="left")
        for row in rows:
            table.add_row(Text(row["name"]), Text(", ".join(row["suites"])))
        console.print(table)
        return
    extra = [c for c in ("kind", "paper", "defaults") if any(c in r for r in rows)]
    table = Table("name", *extra, "description", "from", "status", title=what, title_justify="left")
    for row in rows:
        # plug-ins' own text prints verbatim: a description saying "[image; question]" is not rich
        # markup
        status = (
            f"[red]error[/]: {escape(row['error'])}"
            if row["status"] == "error"
            else f"[green]{row['status']}[/]"
        )
        source = f"{row['distribution'] or '?'} {row['version'] or ''}".strip()
        plain = [
            row["name"],
            *(_show(row.get(c)) for c in extra),
            row.get("description") or "",
            source,
        ]
        table.add_row(*map(Text, plain), status)
    console.print(table)
    if any(row["status"] == "found" for row in rows):
        console.print(
            "found: located without importing; `attnbench list "
            + what
            + " --load` imports each plug-in and shows its kind or its import error."
        )


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)


def print_plan(plan, db_url: str) -> None:
    console.print(
        f"[bold]profile[/] {escape(plan.profile)}   [bold]device[/] {escape(plan.device)}   "
        f"[bold]cells[/] {len(plan.cells)}   [bold]database[/] {escape(db_url)}"
    )
    table = Table(
        "suite", "task", "mechanism", "budget per cell", "seeds", title="plan", title_justify="left"
    )
    for row in plan_table_rows(plan):
        table.add_row(
            *map(
                Text,
                (row["suite"], row["task"], row["mechanism"], row["budget"], str(row["seeds"])),
            )
        )
    console.print(table)
    for note in plan.notes:
        console.print(f"[yellow]note[/] {escape(note)}")


class RichReporter:
    """A progress bar over cells and one over the steps of the current cell."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=errors,
            transient=True,
        )
        self.cells_task = self.progress.add_task("cells", total=None)
        self.steps_task = self.progress.add_task("steps", total=None)

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def cell_started(self, cell: CellSpec, index: int, total: int) -> None:
        self.progress.update(
            self.cells_task, total=total, description=f"cells · {escape(cell.label())}"
        )
        self.progress.reset(self.steps_task, total=None, description="steps")

    def step(self, step: int, planned: int | None) -> None:
        self.progress.update(self.steps_task, completed=step, total=planned)

    def cell_finished(self, record: CellRecord) -> None:
        self.progress.advance(self.cells_task)
        outcome = record.outcome
        if record.status == "done" and outcome is not None:
            metric = record.spec.primary_metric
            self.progress.console.print(
                f"[green]done[/]   {escape(record.spec.label())} "
                f" {escape(metric)}={outcome.metrics[metric]:.4f}  steps={outcome.steps} "
                f" {record.wall_seconds:.1f}s"
            )
        else:
            # Task labels (`[seq_len=64]`), plug-in names and error text are data, not rich markup.
            self.progress.console.print(
                f"[red]{record.status}[/] {escape(record.spec.label())}  "
                f"{escape(cell_error_line(record))}"
            )


def print_summary(summary, db_url: str) -> None:
    done, failed = summary.count("done"), len(summary.records) - summary.count("done")
    line = f"{done} done, {failed} not done"
    if summary.resumed:
        line += f", {summary.resumed} already done (resumed)"
    if summary.taken:
        line += f", {summary.taken} left to another run that had them"
    console.print(
        f"[bold]run {summary.run_id}[/]: {line}. Results in {escape(db_url)}; "
        "see `attnbench leaderboard`."
    )


def print_leaderboard(rows, grids=()) -> None:
    """One table per suite, profile and budget (and task, for suites that rank per task), each
    followed by its length x depth grids, if any."""
    from attnbench.views.grid import for_table
    from attnbench.views.leaderboard import tables, to_rich_tables

    if not rows:
        console.print("no finished results yet; run `attnbench run --suite long-context` first")
        return
    for key, table in zip(tables(rows), to_rich_tables(rows)):
        console.print(table)
        table_grids = for_table(list(grids), key)
        if table_grids:
            print_grids(table_grids)


def print_grids(grids) -> None:
    """Score by context length (columns) and needle depth (rows), one small table per mechanism,
    side by side where the terminal is wide enough."""
    from rich.columns import Columns
    from rich.console import Group

    console.print(
        Text(
            "length x depth: score (0-100), mean over finished cells; rows depth %, columns "
            "length in tokens",
            style="bold",
        )
    )
    # Text, not markup: a mechanism name comes from a plug-in and may hold square brackets.
    console.print(
        Columns(
            [Group(Text(g.mechanism, style="italic"), grid_table(g)) for g in grids], padding=(0, 3)
        )
    )


def grid_table(grid) -> Table:
    """Cells are padded to their column's width by hand, so that the colour fills each cell and the
    grid reads as one block."""
    from attnbench.views.grid import colour, show

    table = Table(box=None, padding=0, show_edge=False)
    table.add_column("D% \\ L", justify="right", style="bold")
    table.add_column(
        "", width=1
    )  # rich drops trailing spaces, so the gap after the depths is a column
    widths = [max(len(str(length)), 3) + 2 for length in grid.lengths]
    for length, width in zip(grid.lengths, widths):
        table.add_column(str(length).rjust(width - 1) + " ", justify="right")
    for depth, row in zip(grid.depths, grid.rows()):
        cells = [
            Text(show(v).rjust(width - 1) + " ", style="black on rgb({},{},{})".format(*colour(v)))
            for v, width in zip(row, widths)
        ]
        table.add_row(f"{depth:g}", "", *cells)
    return table


def print_conformance(reports) -> None:
    for report in reports:
        verdict = "[green]passes[/]" if report.passed else "[red]FAILS[/]"
        settings = ", ".join(f"{k}={v}" for k, v in report.hparams.items()) or "no hyper-parameters"
        table = Table(
            "check",
            "result",
            "detail",
            title=f"{escape(report.mechanism)} {verdict}  (width {report.dim}, {escape(settings)})",
            title_justify="left",
        )
        for result in report.results:
            table.add_row(
                Text(result.name),
                "[green]ok[/]" if result.passed else "[red]fail[/]",
                Text(result.detail),
            )
        console.print(table)


def print_comparisons(comparisons, tolerance: float) -> None:
    import math

    if not comparisons:
        console.print(
            "no cell of the current results matches the baseline (suite, mechanism, config, budget)"
        )
        return
    table = Table(
        "suite",
        "mechanism",
        "task",
        "metric",
        "baseline",
        "current",
        "Δ",
        "95% CI of Δ",
        "seeds",
        "verdict",
        title=f"compare (tolerance {tolerance:.1%})",
        title_justify="left",
    )
    for c in comparisons:
        verdict = (
            "[red]regression[/]"
            if c.regression
            else "[green]improvement[/]"
            if c.improvement
            else "—"
        )
        ci = "n/a (1 seed)" if math.isinf(c.ci_low) else f"{c.ci_low:+.4f} … {c.ci_high:+.4f}"
        table.add_row(
            *map(
                Text,
                (
                    c.suite,
                    c.mechanism,
                    c.task,
                    c.metric,
                    f"{c.baseline_mean:.4f}",
                    f"{c.current_mean:.4f}",
                    f"{c.delta:+.4f}",
                    ci,
                    f"{c.n_baseline}/{c.n_current}",
                ),
            ),
            verdict,
        )
    console.print(table)


def print_unmatched(missing, allow_missing: bool) -> None:
    """Baseline cells the current results lack, and why; a failure of the gate unless allowed."""
    if not missing:
        return
    verdict = (
        "allowed (--allow-missing)"
        if allow_missing
        else "[red]fails the comparison[/] (--allow-missing passes)"
    )
    table = Table(
        "suite",
        "mechanism",
        "task",
        "budget",
        "why",
        title=f"{len(missing)} baseline cells without a match: {verdict}",
        title_justify="left",
    )
    for m in missing:
        table.add_row(
            *map(
                Text,
                (m.suite, m.mechanism, m.task, f"{m.budget_value:g} {m.budget_kind}", m.reason),
            )
        )
    console.print(table)


def print_history(suite, mechanism, metric, chosen, points, spark: str) -> None:
    table_task = f" · {escape(chosen['table_task'])}" if chosen.get("table_task") else ""
    console.print(
        f"[bold]{escape(suite)} / {escape(mechanism)}[/]{table_task} · {escape(metric)} · profile "
        f"{escape(chosen['profile'])} · budget {chosen['budget_value']:.3g} {chosen['budget_kind']}"
    )
    console.print(
        f"  {spark}  ({points[0].mean:.4f} → {points[-1].mean:.4f} over {len(points)} commits)"
    )
    table = Table("first run", "commit", Column(header=Text(metric)), "cells", title_justify="left")
    for point in points:
        commit = point.git_sha[:10] + (" (dirty)" if point.dirty else "")
        table.add_row(str(point.first_run)[:19], commit, f"{point.mean:.4f}", str(point.n_cells))
    console.print(table)


def cell_error_line(record: CellRecord) -> str:
    return (record.error or "").splitlines()[0] if record.error else ""


def plan_table_rows(plan: Plan) -> list[dict[str, Any]]:
    """One row per (suite, task, mechanism) for the plan printed before work starts."""
    rows: dict[tuple, dict[str, Any]] = {}
    for cell in plan.cells:
        key = (cell.suite, cell.task, cell.mechanism)
        row = rows.setdefault(
            key,
            {
                "suite": cell.suite,
                "task": cell.task,
                "mechanism": cell.mechanism,
                "budget": cell.budget.label(),
                "seeds": 0,
            },
        )
        row["seeds"] += 1
    return list(rows.values())
