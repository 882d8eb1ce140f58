"""Each input that once crashed attnbench with a traceback, hung it, or was taken silently: now one
line naming the input and what was expected, exit status 2, and nothing stored before is lost.
(Tried as a careless user would; each case here failed before its fix.)"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from attnbench.cli import main
from tests.views.site_data import populate

FAST = ["--budget-kind", "steps", "--budget", "2", "--seeds", "1", "-m", "mha", "--dry-run"]


def one_line(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize(
    "value,expected",
    [
        ("abc", "is not a whole number"),
        ("nan", "is not a whole number"),
        ("1e400", "is not a finite number"),
        ("[1]", "is not a whole number"),
        ("true", "is not a whole number"),
        ("2.5", "is not a whole number"),
    ],
)
def test_a_hyper_parameter_of_the_wrong_kind_is_refused_at_planning(capsys, value, expected):
    code = main(["run", "--suite", "mqar", *FAST, "--hparam", f"num_heads={value}"])
    one_line(capsys, code, "num_heads", expected)


@pytest.mark.parametrize("value", ["abc", "nan", "1e400", "[1]"])
def test_check_refuses_them_too(capsys, value):
    one_line(capsys, main(["check", "mha", "--hparam", f"num_heads={value}"]), "num_heads")


def test_check_refuses_an_unknown_hyper_parameter_or_profile(capsys):
    one_line(capsys, main(["check", "mha", "--hparam", "windw=4"]), "windw", "no checked mechanism")
    one_line(capsys, main(["check", "mha", "--profile", "smokee"]), "smokee", "profiles:")


@pytest.mark.parametrize(
    "setting,expected",
    [
        ("weight_decay=heavy", "is not a number"),
        ("mlp=maybe", "is not true or false"),
        ("seq_len=64.5", "is not a whole number"),
        ("learning_rates=0.1", "is not a list"),
    ],
)
def test_a_task_setting_of_the_wrong_kind_is_refused_at_planning(capsys, setting, expected):
    one_line(
        capsys,
        main(["run", "--suite", "mqar", *FAST, "--set", setting]),
        setting.split("=")[0],
        expected,
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--seeds", "0"], "--seeds"),
        (["--seeds", "10000000000"], "--seeds"),
        (["--profile", ""], "--profile '' is empty"),
        (["--cell-timeout", "nan"], "--cell-timeout"),
        (["--cell-timeout", "inf"], "--cell-timeout"),
        (["--cell-timeout", "-1"], "--cell-timeout"),
    ],
)
def test_bad_run_options_are_refused_not_replaced_by_defaults(capsys, tmp_path, args, needle):
    code = main(["run", "--suite", "mqar", "-m", "mha", "--db", str(tmp_path / "r.db"), *args])
    one_line(capsys, code, needle)
    assert not (tmp_path / "r.db").exists()


def test_a_config_that_is_a_fifo_or_nested_too_deep_is_one_line(capsys, tmp_path):
    fifo = tmp_path / "run.toml"
    os.mkfifo(fifo)
    one_line(capsys, main(["run", "--config", str(fifo)]), "not a regular file")
    deep = tmp_path / "deep.toml"
    deep.write_text("suite = 'mqar'\n[hparams]\nx = " + "[" * 2000 + "]" * 2000 + "\n")
    one_line(capsys, main(["run", "--config", str(deep)]), str(deep))


def test_a_database_that_cannot_be_opened_is_reported_before_any_conformance_check(
    capsys, tmp_path, monkeypatch
):
    import attnbench.run.screening

    def never(*args, **kwargs):
        raise AssertionError("conformance ran before the database was opened")

    monkeypatch.setattr(attnbench.run.screening, "check_mechanism", never)
    code = main(
        ["run", "--suite", "mqar", "-m", "mha", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/x"]
    )
    one_line(capsys, code, "cannot open database")


def test_reading_a_database_that_does_not_exist_says_so(capsys, tmp_path):
    code = main(["leaderboard", "--db", "sqlite:////nonexistent-dir/x.db"])
    one_line(capsys, code, "no database at /nonexistent-dir/x.db", "does not exist either")


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "results.db"
    populate(path, "[/]evil").dispose()
    return path


@pytest.mark.parametrize("target", ["folder", "/proc/attnbench.parquet", "/dev/full"])
def test_export_to_a_place_that_cannot_be_written_is_one_line(capsys, db, tmp_path, target):
    out = str(tmp_path) if target == "folder" else target
    code = main(["export", out, "--format", "parquet", "--db", str(db)])
    one_line(capsys, code, "export to")


def test_compare_markdown_into_a_folder_is_one_line(capsys, db, tmp_path):
    code = main(["compare", "--baseline", str(db), "--db", str(db), "--markdown", str(tmp_path)])
    one_line(capsys, code, "--markdown")


def exported(db: Path, tmp_path: Path) -> pd.DataFrame:
    out = tmp_path / "export.csv"
    assert main(["export", str(out), "--db", str(db)]) == 0
    return pd.read_csv(out, dtype={"config_hash": str, "cell_uid": str, "run_uid": str})


@pytest.mark.parametrize(
    "column,value,needle",
    [
        ("seed", "abc", "column 'seed' is 'abc', not a whole number"),
        ("seed", -1, "not a whole number >= 0"),
        ("config", "{not json", "column 'config' is not valid JSON"),
        ("started_at", "yesterday", "column 'started_at' is 'yesterday', not a date"),
        ("mechanism", None, "column 'mechanism' is empty"),
        ("status", "finished", "column 'status'"),
        ("budget_value", "inf", "column 'budget_value'"),
        ("mechanism", "m" * 65, "more than 64"),
        ("run_git_dirty", "sometimes", "not true or false"),
    ],
)
def test_import_checks_every_column_before_creating_the_database(
    capsys, db, tmp_path, column, value, needle
):
    frame = exported(db, tmp_path)
    frame[column] = frame[column].astype(object)
    frame.loc[0, column] = value
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    capsys.readouterr()
    code = main(["import", str(bad), "--db", str(tmp_path / "target.db")])
    one_line(capsys, code, "row 2", needle)
    assert not (tmp_path / "target.db").exists()


def test_import_refuses_missing_columns_duplicate_metrics_and_disagreeing_rows(
    capsys, db, tmp_path
):
    frame = exported(db, tmp_path)
    cases = {
        "missing.csv": frame.drop(columns=["run_host"]),
        "twice.csv": pd.concat([frame, frame.iloc[[0]]]),
        "disagree.csv": frame.assign(run_host=["h"] + ["elsewhere"] * (len(frame) - 1)),
    }
    for name, bad in cases.items():
        bad.to_csv(tmp_path / name, index=False)
    for name, needle in (
        ("missing.csv", "missing columns run_host"),
        ("twice.csv", "appears twice"),
        ("disagree.csv", "differs between rows"),
    ):
        capsys.readouterr()
        one_line(
            capsys, main(["import", str(tmp_path / name), "--db", str(tmp_path / "t.db")]), needle
        )
    assert not (tmp_path / "t.db").exists()


def test_compare_against_a_baseline_with_duplicate_rows_is_one_line(capsys, db, tmp_path):
    frame = exported(db, tmp_path)
    pd.concat([frame, frame.iloc[[0]]]).to_csv(tmp_path / "dup.csv", index=False)
    capsys.readouterr()
    one_line(
        capsys,
        main(["compare", "--baseline", str(tmp_path / "dup.csv"), "--db", str(db)]),
        "appears twice",
    )


def test_a_store_poisoned_before_the_checks_existed_cannot_be_made_through_import(
    capsys, db, tmp_path
):
    """The issue's case: `seed="abc"` imported with exit 0, and every later `run --resume`
    crashed."""
    frame = exported(db, tmp_path)
    frame["seed"] = frame["seed"].astype(object)
    frame.loc[:, "seed"] = "abc"
    frame.to_csv(tmp_path / "poison.csv", index=False)
    capsys.readouterr()
    one_line(capsys, main(["import", str(tmp_path / "poison.csv"), "--db", str(db)]), "seed")
    with sqlite3.connect(db) as conn:
        assert conn.execute(
            "SELECT COUNT(*) FROM cells WHERE typeof(seed) != 'integer'"
        ).fetchone() == (0,)
