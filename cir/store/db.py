"""SQLite helpers: connections in WAL mode with explicit transactions, and the meta table."""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from contextlib import contextmanager
from typing import Iterator

from cir.store.layout import SCHEMA

BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for another process's write lock


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread under the caller's lock."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def connect_reader(path: str) -> sqlite3.Connection:
    """A connection that reads the store at ``path``, writable or not.

    A WAL reader writes the ``-shm`` index (and creates ``-wal``/``-shm`` when absent), so where this process may
    write the database and its directory it opens normally. Otherwise (read-only media, a store owned by another
    user) it opens with ``mode=ro``, which reads a WAL whose ``-shm`` exists; when even that cannot work (no
    ``-shm`` and no right to create one: every commit is then in the database file itself) with ``immutable=1``.
    A read-only connection refuses writes, which readers never make."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.access(path, os.R_OK | os.W_OK) and os.access(directory, os.W_OK | os.X_OK):
        return connect(path)
    uri = "file:" + urllib.parse.quote(os.path.abspath(path))
    failure: sqlite3.Error | None = None
    for query in ("?mode=ro", "?mode=ro&immutable=1"):
        conn = sqlite3.connect(uri + query, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            conn.close()
            failure = exc
    assert failure is not None
    raise failure


def create_schema(conn: sqlite3.Connection, meta: dict[str, str]) -> None:
    conn.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer, and see whole commits
    with write_transaction(conn):
        for statement in (s.strip() for s in SCHEMA.split(";")):
            if statement:
                conn.execute(statement)
        set_meta(conn, meta)


def configure_writer(conn: sqlite3.Connection) -> None:
    # NORMAL in WAL mode: a commit survives a process crash; a power cut may lose the last commits, never consistency
    conn.execute("PRAGMA synchronous=NORMAL")


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (the exception propagates)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A consistent snapshot: every SELECT inside sees the same committed state."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def get_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def set_meta(conn: sqlite3.Connection, values: dict[str, object]) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])


def bump_versions(conn: sqlite3.Connection, rows: int, generation: int | None = None, layout_changed: bool = False) -> None:
    """Record a commit: ``rows`` committed rows, a new ``version``; ``layout_version`` too when existing rows changed."""
    meta = get_meta(conn)
    values: dict[str, object] = {"rows": rows, "version": int(meta["version"]) + 1}
    if generation is not None:
        values["generation"] = generation
    if layout_changed:
        values["layout_version"] = int(meta["layout_version"]) + 1
    set_meta(conn, values)
