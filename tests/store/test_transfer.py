"""Export and import: a store survives the round trip through each format, and imports are
idempotent."""

from __future__ import annotations

import pandas as pd
import pytest

from attnbench import results
from attnbench.errors import ConfigError
from attnbench.registry import SUITES
from attnbench.run.planning import RunRequest, plan_run
from attnbench.run.runner import run_plan
from attnbench.store.database import Store
from attnbench.store.transfer import export_file, import_file
from tests.conftest import run_cli
from tests.support.fake_suite import EchoSuite

IDENTITY = ["suite", "mechanism", "task", "config_hash", "seed", "status", "budget_value"]


@pytest.fixture
def source(tmp_path):
    SUITES.register(EchoSuite())
    store = Store.open(tmp_path / "source.db")
    run_plan(plan_run(RunRequest("echo", ("mha", "linear"), seeds=2), device="cpu"), store)
    run_plan(
        plan_run(
            RunRequest("echo", ("mha",), seeds=2, task_settings={"behaviour": "raise"}),
            device="cpu",
        ),
        store,
    )
    yield store
    SUITES.unregister("echo")


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    frame = (
        frame.drop(columns=["cell_id", "run_id"])
        .sort_values(IDENTITY + ["started_at"])
        .reset_index(drop=True)
    )
    return frame.astype({"error": object})


@pytest.mark.parametrize("suffix", ["parquet", "csv", "json"])
def test_round_trip_is_exact(source, tmp_path, suffix):
    path = tmp_path / f"export.{suffix}"
    assert export_file(source, path) == 12
    target = Store.open(tmp_path / "target.db")
    assert import_file(target, path) == (2, 12)
    before, after = comparable(results.load(source)), comparable(results.load(target))
    pd.testing.assert_frame_equal(before, after, check_dtype=False, check_exact=False, rtol=1e-12)
    runs = results.load_runs(target)
    assert list(runs["uid"]) == list(results.load_runs(source)["uid"])
    assert import_file(target, path) == (0, 0)


def test_cli_export_import(source, tmp_path):
    out = tmp_path / "baseline.parquet"
    assert run_cli("export", str(out), "--db", source.url).returncode == 0
    result = run_cli("import", str(out), "--db", str(tmp_path / "b.db"))
    assert result.returncode == 0 and "imported 2 runs and 12 cells" in result.stdout


@pytest.mark.parametrize(
    "content,needle",
    [
        (None, "no such file"),
        (b"not parquet at all", "not a readable parquet"),
        ("csv", "not an attnbench export"),
    ],
)
def test_bad_files_are_refused_without_touching_the_database(tmp_path, content, needle):
    path = tmp_path / ("bad.csv" if content == "csv" else "bad.parquet")
    if content == "csv":
        path.write_text("a,b\n1,2\n")
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=needle):
        import_file(Store.open(tmp_path / "t.db"), path)
    result = run_cli("import", str(path), "--db", str(tmp_path / "never.db"))
    assert (
        result.returncode == 2
        and needle in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )
    assert not (tmp_path / "never.db").exists()


def test_unknown_extension_needs_a_format(tmp_path, source):
    with pytest.raises(ConfigError, match="--format"):
        export_file(source, tmp_path / "out.xlsx")


def test_four_concurrent_imports_into_one_database_all_land(source, tmp_path):
    """Imports go through the runs' retrying write transaction: 3 of 4 failed with "database is
    locked"."""
    import subprocess
    import sys

    from tests.conftest import REPO

    files = []
    for n in range(4):
        db = Store.open(tmp_path / f"part{n}.db")
        run_plan(plan_run(RunRequest("echo", ("mha",), seeds=2), device="cpu"), db)
        files.append(tmp_path / f"part{n}.parquet")
        export_file(db, files[-1])
    target = tmp_path / "target.db"
    Store.open(target).dispose()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "attnbench", "import", str(path), "--db", str(target)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in files
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], [err for _, err in outputs]
    assert (
        len(results.load_runs(Store.open(target))) == 4
        and len(results.load(Store.open(target))) == 16
    )
