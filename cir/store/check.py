"""``cir check``: verify a whole store (the database, its meta, every vector row against its checksum and for
finite values, the staged vectors) and say what is damaged, in sentences.

Opening a store already verifies what it reads (see :mod:`cir.store.checksums`); this adds SQLite's own
``integrity_check``, a finite-value test of every row (checksummed or not) and the staged vectors.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cir.errors import StoreError
from cir.store import checksums, db
from cir.store.health import REINDEX, database_failure, read_store_meta
from cir.store.layout import DB_NAME, vectors_name
from cir.store.pathcodec import from_db, printable
from cir.store.vectors import DTYPE, map_rows, row_bytes


@dataclass
class CheckReport:
    root: Path  # the store checked
    items: int = 0  # items it records
    damaged_rows: list[int] = field(default_factory=list)  # vector rows failing their checksum or not finite (repairable)
    damaged_paths: list[str] = field(default_factory=list)  # the items of those rows, by row
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
            out.append(f"{len(self.damaged_rows)} vectors (rows {checksums.describe_rows(self.damaged_rows)}) fail their "
                       f"checksum or hold NaN/infinite values; their items: {shown}")
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
            paths = [from_db(p) for (p,) in conn.execute("SELECT path FROM items ORDER BY id")]
            ids = conn.execute("SELECT COUNT(*), COALESCE(MAX(id), -1) FROM items").fetchone()
            blocks = checksums.read_blocks(conn, 0, rows)
            staged = [(from_db(p), v) for p, v in conn.execute("SELECT path, vector FROM staged")]
    except sqlite3.DatabaseError as exc:
        raise database_failure(root, exc) from None
    finally:
        conn.close()
    report.items = rows
    if ids != (rows, rows - 1):
        report.fatal.append(f"the store records {rows} rows but holds {ids[0]} items (largest id {ids[1]}): {REINDEX}")
        return report
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
    report.damaged_paths = [paths[i] for i in report.damaged_rows]
    covered = sum(b.count for b in blocks or () if b.stop <= rows)
    report.unchecksummed_rows = rows - covered
    for path, blob in staged:
        vector = np.frombuffer(blob, DTYPE) if len(blob) == row_bytes(dim) else None
        if vector is None or not np.isfinite(vector).all():
            report.bad_staged.append(path)
    return report
