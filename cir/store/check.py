"""``cir check``: verify a whole store (the database, its meta, every vector row against its checksum and for
finite values, the staged vectors) and say what is damaged, in sentences.

Searching verifies the rows it touches, lazily (see :mod:`cir.store.snapshot`); this checks everything at once:
SQLite's own ``integrity_check``, every row's checksum, a finite-value test of every row (checksummed or not), the
row ids file, the staged repairs and that the persisted index file the store names exists.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cir.errors import StoreError
from cir.store import checksums, db
from cir.store.health import REINDEX, database_failure, read_store_meta
from cir.store.layout import DB_NAME, rowids_name, vectors_name
from cir.store.migrate import migrate_store, needs_migration
from cir.store.pathcodec import from_db, printable
from cir.store.vectors import DTYPE, ID_DTYPE, map_rowids, map_rows, row_bytes


@dataclass
class CheckReport:
    root: Path  # the store checked
    items: int = 0  # items it records
    damaged_rows: list[int] = field(default_factory=list)  # vector rows failing their checksum or not finite (repairable)
    damaged_ids: list[int] = field(default_factory=list)  # the ids of the items those rows hold
    damaged_paths: list[str] = field(default_factory=list)  # their paths, by row
    bad_staged: list[str] = field(default_factory=list)  # paths whose staged vector is damaged (dropped by repair)
    unchecksummed_rows: int = 0  # rows without a checksum yet (a store made before checksums)
    fatal: list[str] = field(default_factory=list)  # damage repair cannot fix (the database itself)

    @property
    def sound(self) -> bool:
        return not (self.damaged_rows or self.bad_staged or self.fatal)

    def problems(self) -> list[str]:
        """One sentence per problem found."""
        out = list(self.fatal)
        if self.damaged_rows:
            shown = ", ".join(printable(p) for p in self.damaged_paths[:5]) + (", ..." if len(self.damaged_paths) > 5 else "")
            out.append(f"{len(self.damaged_rows)} vectors (items {checksums.describe_rows(self.damaged_ids)}) fail their "
                       f"checksum or hold NaN/infinite values; their files: {shown}")
        if self.bad_staged:
            out.append(f"{len(self.bad_staged)} staged vectors (changed files waiting for a compaction) are damaged: "
                       + ", ".join(printable(p) for p in self.bad_staged[:5]))
        return out


def check_store(root: str | Path) -> CheckReport:
    """Verify everything in the store at ``root``; a store that cannot be opened at all raises the sentence that
    says why (:class:`~cir.errors.StoreDamaged`)."""
    root = Path(root).expanduser()
    if not (root / DB_NAME).exists():
        raise StoreError(f"no cir store at {root}; create one with `cir index PATH... --store {root}`")
    meta = read_store_meta(root)
    if needs_migration(meta):
        migrate_store(root)
    dim = int(meta["dim"])
    report = CheckReport(root)
    conn = db.connect_reader(str(root / DB_NAME))
    try:
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
        if integrity != ["ok"]:
            report.fatal.append(f"SQLite finds the database damaged ({'; '.join(integrity[:3])}): {REINDEX}")
            return report
        with db.read_transaction(conn):
            meta = db.get_meta(conn)
            rows, generation = int(meta["rows"]), int(meta["generation"])
            records = conn.execute("SELECT id, path FROM items ORDER BY id").fetchall()
            ids = (len(records), records[-1][0] if records else -1)
            blocks = checksums.read_blocks(conn, 0, rows)
            staged = [(from_db(p), v) for p, v in conn.execute("SELECT path, vector FROM staged")]
    except sqlite3.DatabaseError as exc:
        raise database_failure(root, exc) from None
    finally:
        conn.close()
    report.items = int(meta.get("items", rows))
    if ids[0] != rows or ids[1] >= int(meta.get("next_id", 0)):
        report.fatal.append(f"the store records {rows} rows and next id {meta.get('next_id')} but holds {ids[0]} item "
                            f"records (largest id {ids[1]}): {REINDEX}")
        return report
    rowids_path = root / rowids_name(generation)
    if not rowids_path.is_file() or rowids_path.stat().st_size < rows * ID_DTYPE.itemsize:
        report.fatal.append(f"the row ids file {rowids_path} is missing or shorter than the {rows} rows the store "
                            f"records (deleted or truncated outside cir); {REINDEX}")
        return report
    row_ids = map_rowids(rowids_path, rows)
    if not np.array_equal(np.asarray(row_ids), np.array([i for i, _ in records], np.int64)):
        report.fatal.append(f"the row ids file {rowids_path} does not match the store's items (modified outside cir); "
                            f"{REINDEX}")
        return report
    index_file = meta.get("index_file") or ""
    if index_file and not (root / index_file).is_file():
        report.fatal.append(f"the index file {root / index_file} is missing (deleted outside cir); rebuild it with "
                            f"`cir reindex --store {root}`")
    vectors_path = root / vectors_name(generation)
    if vectors_path.is_dir():
        report.fatal.append(f"{vectors_path} is a directory, where the store keeps its vectors; move it away and {REINDEX}")
        return report
    if not vectors_path.exists():
        report.fatal.append(f"the vectors file {vectors_path} is missing, and the store at {root} records {rows} vectors "
                            f"in it (it was deleted outside cir); {REINDEX}")
        return report
    if vectors_path.stat().st_size < rows * row_bytes(dim):
        report.fatal.append(f"{vectors_path} holds {vectors_path.stat().st_size // row_bytes(dim)} vectors but the store "
                            f"records {rows}: it was truncated outside cir; {REINDEX}")
        return report
    vectors = map_rows(vectors_path, rows, dim)
    report.damaged_rows = checksums.damaged_rows(vectors, blocks, 0, rows, full=True).tolist()
    report.damaged_ids = [int(records[i][0]) for i in report.damaged_rows]
    report.damaged_paths = [from_db(records[i][1]) for i in report.damaged_rows]
    covered = sum(b.count for b in blocks or () if b.stop <= rows)
    report.unchecksummed_rows = rows - covered
    for path, blob in staged:
        vector = np.frombuffer(blob, DTYPE) if len(blob) == row_bytes(dim) else None
        if vector is None or not np.isfinite(vector).all():
            report.bad_staged.append(path)
    return report
