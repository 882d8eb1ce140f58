"""One of several processes writing a run of cells into one database at once, as `attnbench run`
does.

    python -m tests.store.concurrent_writer URL WRITER CELLS FOLDER

Says it is ready (FOLDER/ready-WRITER) and waits for FOLDER/go, so that every writer opens the
database and writes at the same time; then opens the store, starts a run, writes CELLS cells with
their metrics one transaction each, and finishes the run. Prints one JSON line: the writer, its run
id, the seconds spent writing, and the retries.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellRecord, CellSpec
from attnbench.store.database import Store

METRICS = ("accuracy", "loss", "grid/L128/D0", "grid/L128/D50", "grid/L128/D100")
PROVENANCE = dict(
    command="attnbench run",
    git_sha="abc",
    git_dirty=False,
    host="h",
    device="cpu",
    python_version="3",
    torch_version="2",
    attnbench_version="0",
    versions={},
)


def record(writer: int, index: int) -> CellRecord:
    spec = CellSpec(
        "mqar",
        f"writer{writer}",
        "smoke",
        "t",
        {"i": index},
        {},
        Budget("steps", 10),
        index,
        primary_metric="accuracy",
    )
    outcome = CellOutcome(
        {name: index + k / 10 for k, name in enumerate(METRICS)},
        budget_used=10.0,
        flops=1e6,
        steps=10,
        params=100,
    )
    return CellRecord(spec, "done", outcome, wall_seconds=0.01)


def main(url: str, writer: int, cells: int, folder: Path) -> None:
    records = [record(writer, index) for index in range(cells)]
    (folder / f"ready-{writer}").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    start = time.perf_counter()
    store = Store.open(url)
    run_id = store.start_run(PROVENANCE, "smoke", {"writer": writer})
    for item in records:
        store.write_cell(run_id, item)
    store.finish_run(run_id, "done")
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {"writer": writer, "run_id": run_id, "seconds": seconds, "retries": store.retries}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
