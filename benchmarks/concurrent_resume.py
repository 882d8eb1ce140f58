"""Concurrent `attnbench run --resume` of one plan: every cell must be done exactly once, however
many runs race.

    python benchmarks/concurrent_resume.py [--runs 4] [--seeds 100] [--postgres URL |
    --start-postgres]

Starts RUNS copies of the same `attnbench run --suite noop -m mha --seeds SEEDS --resume` at once
against one database (a SQLite file, and PostgreSQL when a URL is given or a throwaway server can be
started from Debian's binaries), then counts finished rows per cell. Noop cells return at once, so
the runs collide on nearly every claim: the hardest case for the invariant. Prints, per backend:
cells planned, finished rows, cells done more than once (must be 0), cells never done (must be 0),
the cells each run did, and the wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from noop_plugin import install_noop_suite

REPO = Path(__file__).resolve().parents[1]


def race(url: str, site: Path, runs: int, seeds: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "attnbench",
        "run",
        "--suite",
        "noop",
        "-m",
        "mha",
        "--seeds",
        str(seeds),
        "--jobs",
        "1",
        "--resume",
        "--db",
        url,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(runs)
    ]
    for process in processes:
        _, err = process.communicate(timeout=1800)
        if process.returncode != 0:
            raise SystemExit(f"a run failed ({process.returncode}): {err.strip()[-500:]}")
    seconds = time.perf_counter() - started
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seed, run_id FROM cells WHERE status = 'done'")).all()
        claims = conn.execute(text("SELECT COUNT(*) FROM claims")).scalar()
    engine.dispose()
    per_cell = Counter(seed for seed, _ in rows)
    return {
        "planned": seeds,
        "rows": len(rows),
        "twice": sum(n > 1 for n in per_cell.values()),
        "never": seeds - len(per_cell),
        "per_run": sorted(Counter(run for _, run in rows).values()),
        "claims_left": claims,
        "seconds": seconds,
    }


def report(name: str, figures: dict) -> None:
    print(
        f"{name:10} {figures['planned']} cells planned, {figures['rows']} finished rows, done"
        f" twice: {figures['twice']}, never done: {figures['never']}, claims left:"
        f" {figures['claims_left']}, cells per run {figures['per_run']}, {figures['seconds']:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--postgres", default=None, help="an empty PostgreSQL database URL")
    parser.add_argument(
        "--start-postgres",
        action="store_true",
        help="start a throwaway server from Debian's binaries (as the tests do)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        site = Path(scratch) / "site"
        install_noop_suite(site)
        report(
            "sqlite", race(f"sqlite:///{Path(scratch) / 'race.db'}", site, args.runs, args.seeds)
        )
        if args.postgres:
            report("postgresql", race(args.postgres, site, args.runs, args.seeds))
        elif args.start_postgres:
            sys.path.insert(0, str(REPO))
            from tests.conftest import PostgresCluster, _postgres_bindir

            cluster = PostgresCluster(
                _postgres_bindir(),
                Path(tempfile.mkdtemp(prefix="attnbench-pg-")),
                ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [],
            )
            if os.geteuid() == 0:
                import pwd

                owner = pwd.getpwnam("postgres")
                os.chown(cluster.root, owner.pw_uid, owner.pw_gid)
            cluster.start()
            try:
                report("postgresql", race(cluster.create_database(), site, args.runs, args.seeds))
            finally:
                cluster.stop()


if __name__ == "__main__":
    main()
