"""Shared test helpers: fake plug-in distributions on sys.path and running the CLI in-process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Triton kernels run through Triton's interpreter on this CPU. Triton reads this when it is imported
# and when `@triton.jit` decorates a function (its own standard library's included), so it is set
# here, before any test module can import triton; on the CPU the mechanisms still run their
# references unless ATTNBENCH_KERNELS=on.
os.environ["TRITON_INTERPRET"] = "1"

# the pretrained-kind tests' attention layer, a fixture for every folder that has them
from tests.support.pretrained_fixtures import module  # noqa: E402,F401


def make_distribution(
    site: Path,
    name: str,
    modules: dict[str, str],
    mechanisms: dict[str, str] = (),
    suites: dict[str, str] = (),
) -> Path:
    """Write an installed-looking distribution (dist-info with entry points) and its modules into
    `site`."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = []
    for group, table in (
        ("attnbench.mechanisms", dict(mechanisms)),
        ("attnbench.suites", dict(suites)),
    ):
        if table:
            lines.append(f"[{group}]")
            lines.extend(f"{key} = {value}" for key, value in table.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for name_of_module, source in modules.items():
        (site / f"{name_of_module}.py").write_text(textwrap.dedent(source))
    return site


def run_cli(
    *args: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """The real console script in a fresh process, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "attnbench", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


# ---------------------------------------------------------------- PostgreSQL

PG_INSTALL = "apt-get install postgresql"
PG_REQUIRED = (  # set by .ci/run: there a server that cannot start fails, not skips
    "ATTNBENCH_REQUIRE_POSTGRES"
)


class PostgresCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1, run as the `postgres` OS user when we are
    root."""

    def __init__(self, bindir: Path, root: Path, as_user: list[str]) -> None:
        self.bindir, self.root, self.as_user = bindir, root, as_user
        self.data, self.log = root / "data", root / "server.log"
        self.port = 0

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, *args],
            cwd=self.root,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        conf = (self.data / "postgresql.conf").read_text()
        for attempt in range(
            3
        ):  # another process may take the free port before the server binds it
            self.port = _free_port()
            (self.data / "postgresql.conf").write_text(
                conf + f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 200\n"
            )
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
                return
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [
                    *self.as_user,
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "stop",
                ],
                cwd=self.root,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bindir() -> Path | None:
    """The newest Debian-installed server (/usr/lib/postgresql/<major>/bin), else initdb on PATH."""
    majors = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]),
        reverse=True,
    )
    if majors:
        return majors[0].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _no_postgres(reason: str):
    if os.environ.get(PG_REQUIRED):
        pytest.fail(f"PostgreSQL tests required ({PG_REQUIRED} is set) but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL server of our own for the session, stopped and deleted at its end; skips
    without one."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _no_postgres("psycopg is not installed: pip install 'attnbench[postgres]'")
    bindir = _postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        _no_postgres(f"no PostgreSQL server binaries (initdb, pg_ctl) found: {PG_INSTALL}")
    root = Path(tempfile.mkdtemp(prefix="attnbench-pg-"))
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            _no_postgres(
                "running as root and there is no `postgres` user to run the server as:"
                f" {PG_INSTALL}"
            )
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    cluster = PostgresCluster(bindir, root, as_user)
    try:
        cluster.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines()[-1:]
        log = cluster.log.read_text().strip().splitlines()[-1:] if cluster.log.exists() else []
        cluster.stop()
        _no_postgres(f"the PostgreSQL server in {bindir} did not start: {' / '.join(detail + log)}")
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return postgres_cluster.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> str:
    """The URL of a new, empty results database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return request.getfixturevalue("postgres_url")
