"""`attnbench check`: the conformance report of mechanisms, as a plug-in author runs it."""

from __future__ import annotations

import json

import click

from attnbench.cli.options import parse_assignments
from attnbench.errors import ConfigError


@click.command("check")
@click.argument("mechanisms", nargs=-1)
@click.option(
    "--profile", default="smoke", show_default=True, help="Whose profile defaults to check with."
)
@click.option(
    "--hparam",
    "hparams",
    multiple=True,
    metavar="KEY=VALUE",
    help="Check with this hyper-parameter.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def check_command(
    mechanisms: tuple[str, ...], profile: str, hparams: tuple[str, ...], as_json: bool
) -> int:
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
        specs = [
            spec
            for _, spec in sorted(loaded.items())
            if spec.kind in ("sequence", "feature_map", "fusion")
        ]
    _check_profile_exists(profile, specs)
    overrides = parse_assignments(hparams, "--hparam")
    unused = sorted(k for k in overrides if not any(k in spec.hparams(profile) for spec in specs))
    if unused:
        raise ConfigError(
            f"--hparam {', '.join(unused)}: no checked mechanism has such a hyper-parameter"
        )
    configured = [
        (
            spec,
            spec.hparams(
                profile, {k: v for k, v in overrides.items() if k in spec.hparams(profile)}
            ),
        )
        for spec in specs
    ]  # every value checked against its default before any check runs
    reports = [
        check_mechanism(spec, hparams=params, profile=profile) for spec, params in configured
    ]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        from attnbench.views.console import print_conformance

        print_conformance(reports)
    return 0 if all(r.passed for r in reports) else 1


def _check_profile_exists(profile: str, specs: list) -> None:
    """A profile some suite or checked mechanism knows; a typo would otherwise check paper
    defaults silently."""
    from attnbench.registry import SUITES

    suites, _ = SUITES.load_all()
    known = {p for suite in suites.values() for p in suite.profiles} | {
        p for s in specs for p in s.profile_defaults
    }
    if profile not in known:
        raise ConfigError(
            f"--profile {profile!r} is not a profile of any suite or checked mechanism "
            f"(profiles: {', '.join(sorted(known))})"
        )
