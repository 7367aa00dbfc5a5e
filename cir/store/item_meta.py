"""Per-item captions and metadata (webdataset samples' ``.txt`` / ``.json``) and the record of each indexed shard.

Both tables are keyed by path (an item's path is its identity: ``SHARD#KEY`` for a shard's sample), not by id, so
whatever renumbers or re-keys ids leaves them valid.

    item_meta (path PRIMARY KEY, caption, json)      written in the same transaction as the item's commit
    shards (path PRIMARY KEY, size, mtime_ns, sha256, items)
                                                     written after a run's compaction: a shard is recorded only
                                                     when every sample of it is committed and its vanished keys are
                                                     removed, so a run killed before that re-reads the shard

A changed item's new caption is written with its staged vector, so for the rest of that run a reader sees the new
caption beside the old vector (the compaction that ends the run applies the vector).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Iterable, Sequence

from cir.store.pathcodec import from_db, to_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS item_meta (  -- captions and metadata of items (webdataset samples), by item path
    path TEXT PRIMARY KEY,
    caption TEXT,                    -- the sample's .txt (NULL: none)
    json TEXT                        -- the sample's .json, as text (NULL: none)
);
CREATE TABLE IF NOT EXISTS shards (  -- webdataset shards as last indexed in full
    path TEXT PRIMARY KEY,           -- absolute path of the .tar
    size INTEGER NOT NULL,           -- bytes
    mtime_ns INTEGER NOT NULL,       -- modification time
    sha256 TEXT NOT NULL,            -- hex digest of the whole file
    items INTEGER NOT NULL           -- samples indexed from it
);
"""


@dataclass(frozen=True)
class ItemMeta:
    path: str  # the item's path (identity)
    caption: str | None  # its caption, if any
    metadata: str | None  # its JSON metadata as text, if any

    def to_json(self) -> dict:
        return {"caption": self.caption, "metadata": json.loads(self.metadata) if self.metadata is not None else None}


@dataclass(frozen=True)
class ShardRecord:
    path: str  # absolute path of the shard
    size: int  # bytes
    mtime_ns: int  # modification time
    sha256: str  # hex digest of the file
    items: int  # samples indexed from it


def ensure_tables(conn: sqlite3.Connection) -> None:
    """Create the tables in a store made before them (the writer calls this when it opens)."""
    for statement in (s.strip() for s in SCHEMA.split(";")):
        if statement:
            conn.execute(statement)


def write(conn: sqlite3.Connection, metas: Sequence[ItemMeta]) -> None:
    """Set the metadata of items (inside the caller's transaction); an item with neither caption nor JSON has no row."""
    conn.executemany("DELETE FROM item_meta WHERE path = ?", [(to_db(m.path),) for m in metas if m.caption is None and m.metadata is None])
    conn.executemany("INSERT OR REPLACE INTO item_meta (path, caption, json) VALUES (?, ?, ?)",
                     [(to_db(m.path), m.caption, m.metadata) for m in metas if m.caption is not None or m.metadata is not None])


def prune(conn: sqlite3.Connection) -> None:
    """Drop the metadata of items that are gone (inside the compaction's transaction)."""
    conn.execute("DELETE FROM item_meta WHERE path NOT IN (SELECT path FROM items) AND path NOT IN (SELECT path FROM staged)")


def read(conn: sqlite3.Connection, paths: Iterable[str]) -> dict[str, ItemMeta]:
    """The metadata of those of ``paths`` that have some (a store made before the table has none)."""
    if not _has_table(conn, "item_meta"):
        return {}
    out = {}
    for path in set(paths):
        row = conn.execute("SELECT caption, json FROM item_meta WHERE path = ?", (to_db(path),)).fetchone()
        if row is not None:
            out[path] = ItemMeta(path, row[0], row[1])
    return out


def known_shards(conn: sqlite3.Connection) -> dict[str, ShardRecord]:
    if not _has_table(conn, "shards"):
        return {}
    cursor = conn.execute("SELECT path, size, mtime_ns, sha256, items FROM shards")
    return {from_db(p): ShardRecord(from_db(p), size, mtime, sha, items) for p, size, mtime, sha, items in cursor}


def record_shards(conn: sqlite3.Connection, records: Sequence[ShardRecord], forget: Iterable[str] = ()) -> None:
    """Record shards indexed in full and forget vanished ones (one transaction of its own)."""
    from cir.store import db

    with db.write_transaction(conn):
        conn.executemany("DELETE FROM shards WHERE path = ?", [(to_db(p),) for p in forget])
        conn.executemany("INSERT OR REPLACE INTO shards (path, size, mtime_ns, sha256, items) VALUES (?, ?, ?, ?, ?)",
                         [(to_db(r.path), r.size, r.mtime_ns, r.sha256, r.items) for r in records])


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None
