"""What a store directory holds, and the SQLite schema.

    DIR/items.sqlite            SQLite (WAL): items, meta, staged repairs, blocks (checksums of vector rows)
    DIR/vectors.<gen>.f32       float32 rows; only the first ``meta.rows`` rows are committed
    DIR/rowids.<gen>.i64        int64 per row: the stable id of the item whose vector the row holds (ascending)
    DIR/index.<n>.faiss         the persisted approximate index, when the store has one (cir.store.index_file)
    DIR/writer.lock             flock'ed by the one process allowed to write

The ``meta`` table holds: format_version, backbone (canonical model spec), dim, generation (which vectors file is
current), rows (committed rows, live or removed-but-not-yet-compacted), items (live items), next_id (the id the next
new item gets: ids are never reused), version (bumped by every commit), layout_version (bumped by every commit that
rewrites rows: compaction) and the index keys of :mod:`cir.store.index_file`. Item ids are stable: a row is internal.
"""

from __future__ import annotations

import os
import re

FORMAT_VERSION = 2  # 1: ids were vector rows (renumbered by compaction); 2: stable ids (cir.store.migrate)
DB_NAME = "items.sqlite"
LOCK_NAME = "writer.lock"
VECTORS_PATTERN = re.compile(r"^vectors\.(\d+)\.f32$")
ROWIDS_PATTERN = re.compile(r"^rowids\.(\d+)\.i64$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,          -- stable: never changes, never reused (meta.next_id)
    path TEXT NOT NULL,              -- absolute path of the file (unique among live items)
    source TEXT NOT NULL,            -- the folder / CSV / image it was indexed through
    size INTEGER NOT NULL,           -- bytes
    mtime_ns INTEGER NOT NULL,       -- modification time when embedded
    sha256 TEXT NOT NULL,            -- hex digest of the content
    width INTEGER NOT NULL,          -- pixels, as displayed
    height INTEGER NOT NULL,
    removed INTEGER                  -- NULL: live, else meta.version of the commit that removed it (row kept until a compaction)
);
CREATE UNIQUE INDEX IF NOT EXISTS items_live_path ON items (path) WHERE removed IS NULL;
CREATE INDEX IF NOT EXISTS items_removed ON items (removed) WHERE removed IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_sha256 ON items (sha256);
CREATE TABLE IF NOT EXISTS staged (  -- re-embedded vectors of damaged rows (cir repair), applied by the next compaction
    path TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    vector BLOB NOT NULL             -- float32 x dim
);
CREATE TABLE IF NOT EXISTS blocks (  -- checksums of committed vector rows (cir.store.checksums)
    start INTEGER PRIMARY KEY,       -- first row of the block
    count INTEGER NOT NULL,          -- rows in the block
    crc32 INTEGER NOT NULL           -- CRC-32 of the rows' float32 bytes
);
CREATE TABLE IF NOT EXISTS tombstones (  -- ids the persisted index holds that are no longer live (filtered at search)
    id INTEGER PRIMARY KEY
);
"""

ITEM_COLUMNS = ("id", "path", "source", "size", "mtime_ns", "sha256", "width", "height")


def vectors_name(generation: int) -> str:
    return f"vectors.{generation:06d}.f32"


def rowids_name(generation: int) -> str:
    return f"rowids.{generation:06d}.i64"


def vector_generations(root: str) -> list[int]:
    """Generations of the vectors files present in ``root`` (current, and orphans of an interrupted write)."""
    return sorted({int(m.group(1)) for name in os.listdir(root) if (m := VECTORS_PATTERN.match(name) or ROWIDS_PATTERN.match(name))})


def canonical_spec(spec: str) -> str:
    """The spec as a store records it: local paths made absolute, so the store opens from any directory."""
    from cir.backbones.spec import SHIPPED_CHECKPOINTS, parse_model_spec

    parsed = parse_model_spec(spec)
    if parsed.kind == "cir" and parsed.name not in SHIPPED_CHECKPOINTS:
        return f"cir:{os.path.abspath(os.path.expanduser(parsed.name))}"
    if parsed.kind == "openclip" and parsed.weights_is_path:
        return f"openclip:{parsed.name}/{os.path.abspath(parsed.weights)}"
    if parsed.kind == "hf" and os.path.isdir(os.path.expanduser(parsed.name)):
        return f"hf:{os.path.abspath(os.path.expanduser(parsed.name))}"
    return str(parsed)
