"""SQLite helpers: connections in WAL mode with explicit transactions, and the meta table."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator

from cir.store.layout import SCHEMA

BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for another process's write lock


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread under the caller's lock."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


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
