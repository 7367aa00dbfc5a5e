"""Migrating a store written by an older cir to the current format, in place, on open.

Format 1 (cir before stable ids) numbered items by vector row, so a compaction renumbered them. Format 2 gives every
item a stable id (:mod:`cir.store.layout`). Migrating keeps every item, its id (the format-1 id: its row at the time
of migration), its metadata and its vector:

1. ``rowids.<gen>.i64`` is written for the current generation (row i -> id i) and fsync'ed;
2. one transaction rebuilds ``items`` with the new columns (live path uniqueness instead of global, ``removed``),
   creates ``tombstones``, records ``items`` and ``next_id`` and sets ``format_version`` to 2.

Killed before step 2: the store is still format 1 (the rowids file is rewritten by the next attempt); after: it is
format 2, whole. Format-1 ``staged`` vectors (changed files waiting for a compaction, never visible to readers) are
dropped: their items keep their old vector and metadata, so the next ``cir index`` sees those files as changed and
embeds them again. The migration takes the writer lock; a store this user may not write is refused with the
command that migrates it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from cir.errors import StoreError
from cir.store import db
from cir.store.layout import DB_NAME, FORMAT_VERSION, SCHEMA, rowids_name
from cir.store.lock import acquire_writer_lock, release_writer_lock
from cir.store.vectors import ID_DTYPE, fsync_dir

log = logging.getLogger("cir.store")

MIGRATION_CHUNK = 1 << 20  # row ids written per call while migrating


def needs_migration(meta: dict[str, str]) -> bool:
    return int(meta.get("format_version", 0)) < FORMAT_VERSION


def migrate_store(root: Path) -> bool:
    """Bring the store at ``root`` to :data:`~cir.store.layout.FORMAT_VERSION`; returns whether it migrated (False:
    another process migrated it meanwhile)."""
    if not (os.access(root / DB_NAME, os.W_OK) and os.access(root, os.W_OK | os.X_OK)):
        raise StoreError(
            f"the store at {root} was written by an older cir (format 1: item ids were vector rows) and must be "
            f"migrated once, which this user may not do (it is read-only here); run `cir info --store {root}` as a "
            "user who may write it (nothing is lost: every item keeps its id, path and vector)"
        )
    fd = acquire_writer_lock(root)
    try:
        conn = db.connect(str(root / DB_NAME))
        try:
            db.configure_writer(conn)
            meta = db.get_meta(conn)
            if not needs_migration(meta):
                return False
            rows, generation = int(meta["rows"]), int(meta["generation"])
            path = root / rowids_name(generation)
            with open(path, "wb") as fh:
                for start in range(0, rows, MIGRATION_CHUNK):
                    fh.write(np.arange(start, min(rows, start + MIGRATION_CHUNK), dtype=ID_DTYPE).tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            fsync_dir(root)
            with db.write_transaction(conn):
                conn.execute("ALTER TABLE items RENAME TO items_format1")
                conn.execute("DROP INDEX IF EXISTS items_sha256")
                for statement in (s.strip() for s in SCHEMA.split(";")):
                    if statement:
                        conn.execute(statement)
                conn.execute("INSERT INTO items (id, path, source, size, mtime_ns, sha256, width, height, removed) "
                             "SELECT id, path, source, size, mtime_ns, sha256, width, height, NULL FROM items_format1")
                conn.execute("DROP TABLE items_format1")
                dropped = conn.execute("SELECT COUNT(*) FROM staged").fetchone()[0]
                conn.execute("DELETE FROM staged")
                db.set_meta(conn, {"format_version": FORMAT_VERSION, "items": rows, "next_id": rows,
                                   "version": int(meta["version"]) + 1})
        finally:
            conn.close()
    finally:
        release_writer_lock(fd)
    log.warning("migrated the store at %s from format 1 to format %d (stable item ids): %d items kept with their ids, "
                "paths and vectors%s", root, FORMAT_VERSION, rows,
                f"; {dropped} changed files waiting for a compaction will be embedded again by the next `cir index`"
                if dropped else "")
    return True
