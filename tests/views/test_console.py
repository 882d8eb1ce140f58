"""What the run prints: plug-in names, task labels and error text are shown as text, never as
rich markup."""

from __future__ import annotations

import io

from rich.console import Console

from attnbench.cell import CellRecord
from attnbench.views.console import RichReporter
from tests.store.test_database import spec


def test_bracketed_error_text_and_names_print_verbatim():
    reporter = RichReporter()
    out = io.StringIO()
    reporter.progress.live.console = Console(file=out, width=200)
    record = CellRecord(
        spec(0, mechanism="[red]evil[/red]"),
        "oom",
        error="RuntimeError: [enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator",
    )
    reporter.cell_finished(record)
    text = out.getvalue()
    assert "[enforce fail at alloc_cpu.cpp:121]" in text and "[red]evil[/red]" in text


def test_plugin_descriptions_and_errors_in_listings_print_verbatim(monkeypatch):
    from attnbench.views import console as console_module

    out = io.StringIO()
    monkeypatch.setattr(console_module, "console", Console(file=out, width=300))
    rows = [
        {
            "name": "[b]x[/b]",
            "kind": "fusion",
            "description": "joint [image; question] attention",
            "distribution": "pkg",
            "version": "1",
            "status": "error",
            "error": "ImportError: [errno 2]",
        }
    ]
    console_module.print_rows("mechanisms", rows)
    text = out.getvalue()
    assert "[image; question]" in text and "[b]x[/b]" in text and "[errno 2]" in text
