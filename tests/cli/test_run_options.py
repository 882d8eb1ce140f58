"""`attnbench run` options that shape a run without training: --config, --dry-run, --executor
checks."""

from __future__ import annotations

from tests.conftest import run_cli

CONFIG = """
suite = "mqar"
mechanisms = ["mha", "linear"]
seeds = 2
budget = 3
budget_kind = "steps"
[settings]
num_train = 64
num_test = 16
"""


def test_a_config_file_plans_the_run_and_dry_run_stores_nothing(tmp_path):
    (tmp_path / "run.toml").write_text(CONFIG)
    db = tmp_path / "r.db"
    result = run_cli("run", "--config", str(tmp_path / "run.toml"), "--dry-run", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert (
        "cells 4" in result.stdout
        and "3 steps" in result.stdout
        and "nothing was run or stored" in result.stdout
    )
    assert not db.exists()


def test_command_line_options_win_over_the_file(tmp_path):
    (tmp_path / "run.toml").write_text(CONFIG)
    result = run_cli(
        "run",
        "--config",
        str(tmp_path / "run.toml"),
        "--dry-run",
        "--seeds",
        "1",
        "-m",
        "mha",
        "--set",
        "num_test=32",
        "--db",
        str(tmp_path / "r.db"),
    )
    assert result.returncode == 0, result.stderr
    assert "cells 1" in result.stdout


def test_bad_config_and_conflicting_options_are_one_line_exit_2(tmp_path):
    (tmp_path / "bad.toml").write_text('suite = "mqar"\nseedz = 2\n')
    for args, message in (
        (["--config", str(tmp_path / "bad.toml")], "unknown key 'seedz'; did you mean seeds?"),
        (["--config", str(tmp_path / "absent.toml")], "no such file"),
        ([], "--suite is required"),
        (["--suite", "mqar", "--executor", "ray", "--isolate"], "belong to the local executor"),
    ):
        result = run_cli("run", *args, "--db", str(tmp_path / "r.db"))
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
            result.stderr
        )
    assert not (tmp_path / "r.db").exists()


def test_backend_option_file_key_and_the_suites_that_lack_the_backend(tmp_path):
    (tmp_path / "lm.toml").write_text('suite = "mqar"\nbackend = "lm-eval"\n')
    db = str(tmp_path / "r.db")
    for args, message in (
        (
            ["--suite", "mqar", "--backend", "lm-eval"],
            "--backend lm-eval: suite 'mqar' offers only native",
        ),
        (["--suite", "long-context", "--backend", "lm-eval"], "suite 'needle' offers only native"),
        (["--config", str(tmp_path / "lm.toml")], "suite 'mqar' offers only native"),
        (["--suite", "mqar", "--backend", "vllm"], "Invalid value for '--backend'"),
    ):
        result = run_cli("run", *args, "--dry-run", "--db", db)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
            result.stderr
        )
    native = run_cli(
        "run",
        "--config",
        str(tmp_path / "lm.toml"),
        "--backend",
        "native",
        "-m",
        "mha",
        "--dry-run",
        "--db",
        db,
    )  # the command line wins over the file
    assert native.returncode == 0, native.stderr


def test_set_takes_true_and_false_as_a_shell_user_types_them(tmp_path):
    # the README's SECOND command: a boolean task setting spelled in lower case
    result = run_cli(
        "run",
        "--suite",
        "second",
        "-m",
        "cbam",
        "--set",
        "loss=ce_dice",
        "--set",
        "decoder_attention=true",
        "--dry-run",
        "--db",
        str(tmp_path / "r.db"),
    )
    assert result.returncode == 0, result.stderr
    assert "decoder-attention" in result.stdout
