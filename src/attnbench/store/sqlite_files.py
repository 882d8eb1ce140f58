"""The SQLite file behind a `--db`: what it is before it is opened, and how a file one may only read
is read.

Everything here runs before a connection exists, so that a path that is a folder, a FIFO or a
missing folder is one clear line and no database file is created as a side effect of a command that
fails.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url

from attnbench.errors import StoreError


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names; None for an in-memory database, a `file:` URI, or another
    backend."""
    database = url.database
    if (
        url.get_backend_name() != "sqlite"
        or database in (None, "", ":memory:")
        or database.startswith("file:")
    ):
        return None
    return Path(database).expanduser()


def check_sqlite_file(path: Path, create: bool) -> None:
    """Refuse a path that cannot be a SQLite database; make the folder of a new one when
    `create`."""
    if path.exists():
        if path.is_dir():
            raise StoreError(f"database path {path} is a folder, not a SQLite file")
        if not path.is_file():
            raise StoreError(f"database path {path} is not a regular file (a pipe or a device?)")
        return
    if not create:
        where = "" if path.parent.is_dir() else f" (the folder {path.parent} does not exist either)"
        raise StoreError(f"no database at {path}{where}; run `attnbench run` first or pass --db")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the database folder {path.parent}: {exc.strerror}"
        ) from None


def writable(path: Path) -> bool:
    """Whether this process may write the file and the journal files SQLite keeps beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def read_only_url(url: URL, path: Path) -> URL:
    """The file opened read-only (`mode=ro`); `immutable=1` too when SQLite could not even make the
    WAL index beside it (a read-only folder), since then nobody can be writing it."""
    options = "mode=ro" + ("" if os.access(path.parent, os.W_OK) else "&immutable=1")
    return make_url(f"sqlite:///file:{quote(str(path.resolve()))}?{options}&uri=true")
