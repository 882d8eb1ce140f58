"""What a run tells whoever watches it: a cell started, a step of it, a cell finished. The
terminal's progress bars (`attnbench.views.console.RichReporter`) implement it; tests and libraries
run silent."""

from __future__ import annotations

from typing import Protocol

from attnbench.cell import CellRecord, CellSpec


class Reporter(Protocol):
    def cell_started(self, cell: CellSpec, index: int, total: int) -> None: ...
    def step(self, step: int, planned: int | None) -> None: ...
    def cell_finished(self, record: CellRecord) -> None: ...


class SilentReporter:
    def cell_started(self, cell: CellSpec, index: int, total: int) -> None:
        pass

    def step(self, step: int, planned: int | None) -> None:
        pass

    def cell_finished(self, record: CellRecord) -> None:
        pass
