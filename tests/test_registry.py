"""Entry-point discovery: lazy listing, broken plug-ins, unknown names."""

from __future__ import annotations

import json
import sys

import pytest

from attnbench.errors import PluginLoadError, UnknownNameError
from attnbench.registry import MECHANISM_GROUP, MECHANISMS, Registry, validate_mechanism
from attnbench.views.listing import list_plugins
from tests.conftest import make_distribution, run_cli

GOOD_SPEC = """
from attnbench.mechanism import FlopBreakdown, MechanismSpec
SPEC = MechanismSpec(name="{name}", kind="sequence", description="d", paper="p",
                     build=lambda dim, causal=True: None, flops=lambda *a, **k: FlopBreakdown())
"""


@pytest.fixture
def broken_site(tmp_path, monkeypatch):
    site = make_distribution(
        tmp_path / "site",
        "brokenplugins",
        modules={
            "raises_on_import": (
                '"""Imports a missing dependency."""\nimport not_a_real_dependency_xyz\n'
            ),
            "not_a_spec": '"""Registers the wrong kind of object."""\nSPEC = 42\n',
            "misnamed": GOOD_SPEC.format(name="something_else"),
            "fine_plugin": (
                '"""A working third-party mechanism."""\n' + GOOD_SPEC.format(name="fine")
            ),
        },
        mechanisms={
            "ghost": "no_such_module_anywhere:SPEC",
            "crashy": "raises_on_import:SPEC",
            "wrongtype": "not_a_spec:SPEC",
            "misnamed": "misnamed:SPEC",
            "fine": "fine_plugin:SPEC",
        },
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def fresh_registry() -> Registry:
    return Registry(MECHANISM_GROUP, "mechanism", validate_mechanism)


def test_builtins_are_found_through_entry_points():
    assert {"mha", "sliding_window", "linear"} <= set(MECHANISMS.names())
    assert MECHANISMS.get("mha").name == "mha"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean mha"):
        fresh_registry().get("mhaa")


def test_each_broken_plugin_fails_alone(broken_site):
    registry = fresh_registry()
    assert registry.get("fine").name == "fine"
    for name, expected in [
        ("ghost", "ModuleNotFoundError"),
        ("crashy", "not_a_real_dependency_xyz"),
        ("wrongtype", "MechanismSpec"),
        ("misnamed", "something_else"),
    ]:
        with pytest.raises(PluginLoadError, match=expected):
            registry.get(name)
    loaded, errors = registry.load_all()
    assert {"mha", "fine"} <= set(loaded)
    assert set(errors) == {"ghost", "crashy", "wrongtype", "misnamed"}


def test_listing_without_import_reports_what_it_can_see(broken_site):
    rows = {r["name"]: r for r in list_plugins("mechanisms", load=False)}
    assert (
        rows["ghost"]["status"] == "error" and "no_such_module_anywhere" in rows["ghost"]["error"]
    )
    assert rows["crashy"]["status"] == "found" and rows["mha"]["status"] == "found"
    assert rows["mha"]["kind"] == "sequence" and rows["mha"]["defaults"] == {"num_heads": 8}
    assert "arXiv:1706.03762" in rows["mha"]["paper"] and rows["fine"]["description"] == "d"
    assert rows["crashy"]["description"] == "Imports a missing dependency."
    assert rows["fine"]["distribution"] == "brokenplugins"
    loaded_rows = {r["name"]: r for r in list_plugins("mechanisms", load=True)}
    assert loaded_rows["crashy"]["status"] == "error"
    assert loaded_rows["mha"]["kind"] == "sequence"


def test_list_command_survives_broken_plugins(broken_site):
    result = run_cli("list", "mechanisms", "--load", "--json", env={"PYTHONPATH": str(broken_site)})
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["crashy"]["status"] == "error" and rows["mha"]["status"] == "ok"


@pytest.mark.parametrize(
    "args", [["--help"], ["list", "mechanisms"], ["list", "suites"], ["--version"]]
)
def test_help_and_list_do_not_import_torch(args):
    code = (
        "import sys\nfrom attnbench.cli import main\ncode = main(%r)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(code)" % (args,)
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_duplicate_registration_is_an_error(tmp_path, monkeypatch):
    site = make_distribution(
        tmp_path / "dup",
        "dupplugin",
        modules={"dupmod": GOOD_SPEC.format(name="mha")},
        mechanisms={"mha": "dupmod:SPEC"},
    )
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginLoadError, match="more than once"):
        fresh_registry().get("mha")
