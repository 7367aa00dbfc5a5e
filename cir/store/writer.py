"""The write side of a store: one process at a time, every change a crash-safe commit.

Internal API, used by the indexer and by ``benchmarks/bench_search.py`` to synthesise large stores:

    with StoreWriter(root) as writer:
        writer.commit(new_items, vectors)                 # rows len .. len+N-1 become items len .. len+N-1
        writer.compact(remove_ids={3, 7})                 # drop items, apply staged updates, renumber

Why a kill -9 at any moment leaves a consistent store (row i = item i, no duplicates, nothing half-applied):

* ``commit``: vectors are appended to the current vectors file and flushed (fsync'ed) *before* one SQLite
  transaction inserts the items and records the new row count. Killed before the commit: the items do not exist
  and the appended bytes lie past the recorded row count, so the next writer truncates them. Killed after: both
  are there. Readers only ever map the recorded rows.
* Changed files get their new vector *staged* in SQLite (table ``staged``), invisible to readers; the item keeps
  its old, self-consistent vector and metadata until a compaction applies the staged vector.
* ``compact``: the surviving rows (with staged vectors substituted) are written to a *new* generation file,
  fsync'ed, and one transaction deletes the removed items, applies the staged metadata, renumbers ids to rows
  and switches ``meta.generation``. Killed before the commit: the old generation is intact and the new file is
  an orphan the next writer deletes. Killed after: the old file is the orphan. The old file is deleted only after
  a checkpoint has copied the commit from the WAL into items.sqlite and synced it (``synchronous=NORMAL`` leaves a
  commit still in the WAL to a power cut; a power cut may lose commits, never the file a surviving state names).
* A writer holds ``writer.lock`` (flock, released by the kernel when the process dies), so recovery never races
  another writer.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from cir.errors import StoreDamaged, StoreError
from cir.store import checksums, db, item_meta
from cir.store.layout import DB_NAME, vector_generations, vectors_name
from cir.store.lock import acquire_writer_lock, release_writer_lock
from cir.store.pathcodec import from_db, printable, to_db
from cir.store.vectors import DTYPE, VectorAppender, fsync_dir, map_rows

COMPACTION_CHUNK_ROWS = 65_536  # rows copied per write while compacting


@dataclass(frozen=True)
class ItemRecord:
    """Metadata of one image as the store keeps it (its id is its row, assigned by the writer)."""

    path: str  # absolute path
    source: str  # folder / CSV / image it was indexed through
    size: int  # bytes
    mtime_ns: int  # modification time (nanoseconds)
    sha256: str  # hex digest of the content
    width: int  # pixels, as displayed
    height: int


@dataclass(frozen=True)
class KnownItem:
    id: int
    size: int
    mtime_ns: int
    sha256: str
    source: str


@dataclass(frozen=True)
class MetadataTouch:
    """A file whose stat changed but whose content did not: only its metadata is updated."""

    id: int
    size: int
    mtime_ns: int


class StoreWriter:
    """Exclusive writer of a store directory. Use as a context manager; ``close`` releases the lock."""

    def __init__(self, root: str | Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self._lock_fd = acquire_writer_lock(self.root)
        try:
            self.conn = db.connect(str(self.root / DB_NAME))
            db.configure_writer(self.conn)
            meta = db.get_meta(self.conn)
            self.dim = int(meta["dim"])
            self.generation = int(meta["generation"])
            rows = int(meta["rows"])
            self._remove_orphans()
            self.vectors = VectorAppender(self.root / vectors_name(self.generation), self.dim, rows, fsync)
            self._check_rows(rows)
            self._checksum_unchecked_rows(rows)
            item_meta.ensure_tables(self.conn)
        except BaseException:
            self._release()
            raise

    # --- reading what is committed ---------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        """Committed rows = items."""
        return self.vectors.rows

    def known_items(self) -> dict[str, KnownItem]:
        cursor = self.conn.execute("SELECT path, id, size, mtime_ns, sha256, source FROM items")
        return {from_db(path): KnownItem(i, size, mtime, sha, from_db(source)) for path, i, size, mtime, sha, source in cursor}

    def staged_items(self) -> dict[str, ItemRecord]:
        cursor = self.conn.execute("SELECT path, source, size, mtime_ns, sha256, width, height FROM staged")
        records = (ItemRecord(from_db(path), from_db(source), *rest) for path, source, *rest in cursor)
        return {record.path: record for record in records}

    # --- writing ---------------------------------------------------------------------------------------------
    def commit(
        self,
        items: Sequence[ItemRecord],
        vectors: np.ndarray,
        staged: Sequence[tuple[ItemRecord, np.ndarray]] = (),
        touched: Sequence[MetadataTouch] = (),
        meta: Sequence[item_meta.ItemMeta] = (),
    ) -> list[int]:
        """Append new items with their vectors, stage new vectors of changed items, update touched metadata and
        the captions / JSON of items (``meta``, by path): one atomic commit. Returns the ids (= rows) of the new items."""
        vectors = np.asarray(vectors, dtype=DTYPE).reshape(len(items), self.dim)
        _refuse_non_finite(vectors, lambda i: items[i].path)
        _refuse_non_finite(np.array([np.asarray(v, DTYPE).reshape(self.dim) for _, v in staged], DTYPE).reshape(-1, self.dim),
                           lambda i: staged[i][0].path)
        start = self.rows
        self.vectors.append(vectors)
        try:
            with db.write_transaction(self.conn):
                if len(items):
                    checksums.write_blocks(self.conn, [checksums.Block(start, len(items), checksums.crc_of(vectors))])
                self._insert_items(start, items)
                self._stage(staged)
                item_meta.write(self.conn, meta)
                self.conn.executemany(
                    "UPDATE items SET size = ?, mtime_ns = ? WHERE id = ?", [(t.size, t.mtime_ns, t.id) for t in touched]
                )
                db.bump_versions(self.conn, rows=start + len(items), layout_changed=bool(touched))
        except BaseException:
            self.vectors.rollback_to(start)
            raise
        return list(range(start, start + len(items)))

    def compact(self, remove_ids: Iterable[int] = (), keep_staged: set[str] | None = None) -> bool:
        """Drop ``remove_ids``, apply staged vectors (those whose path is in ``keep_staged``, or all when None;
        the others are discarded) and renumber the survivors 0..n-1 in their current order. Returns whether
        anything changed."""
        staged = self.staged_items()
        keep = {p: r for p, r in staged.items() if keep_staged is None or p in keep_staged}
        removed = np.unique(np.fromiter((int(i) for i in remove_ids), dtype=np.int64))
        if removed.size and (removed[0] < 0 or removed[-1] >= self.rows):
            raise ValueError(f"ids to remove must lie in 0..{self.rows - 1}")
        if not removed.size and not staged:
            return False
        ids_by_path = {p: k.id for p, k in self.known_items().items()}
        removed_set = set(removed.tolist())
        updates = {ids_by_path[p]: r for p, r in keep.items() if p in ids_by_path and ids_by_path[p] not in removed_set}
        if not removed.size and not updates:  # only stale staged rows: discard them
            with db.write_transaction(self.conn):
                self.conn.execute("DELETE FROM staged")
            return False
        survivors = np.setdiff1d(np.arange(self.rows, dtype=np.int64), removed, assume_unique=True)
        new_vectors = {i: self._staged_vector(r.path) for i, r in updates.items()}
        new_generation = self.generation + 1
        new_path = self.root / vectors_name(new_generation)
        new_blocks = self._write_generation(new_path, survivors, new_vectors, removed_set)
        try:
            with db.write_transaction(self.conn):
                self.conn.execute("DELETE FROM blocks")
                checksums.write_blocks(self.conn, new_blocks)
                self.conn.executemany("DELETE FROM items WHERE id = ?", [(int(i),) for i in removed])
                self.conn.executemany(
                    "UPDATE items SET source = ?, size = ?, mtime_ns = ?, sha256 = ?, width = ?, height = ? WHERE id = ?",
                    [(to_db(r.source), r.size, r.mtime_ns, r.sha256, r.width, r.height, i) for i, r in updates.items()],
                )
                self._renumber(survivors)
                self.conn.execute("DELETE FROM staged")
                item_meta.prune(self.conn)
                db.bump_versions(self.conn, rows=len(survivors), generation=new_generation, layout_changed=True)
        except BaseException:
            new_path.unlink(missing_ok=True)
            raise
        old_path = self.vectors.path
        self.vectors.close()
        self.generation = new_generation
        self.vectors = VectorAppender(new_path, self.dim, len(survivors), self.vectors.fsync)
        if self._checkpointed():  # else a reader holds the WAL: the old generation stays until a later writer's checkpoint
            old_path.unlink(missing_ok=True)
            fsync_dir(self.root)
        return True

    def record_shards(self, records: Sequence[item_meta.ShardRecord], forget: Iterable[str] = ()) -> None:
        """Record webdataset shards indexed in full (call after the run's compaction) and forget vanished ones."""
        item_meta.record_shards(self.conn, records, forget)

    def known_shards(self) -> dict[str, item_meta.ShardRecord]:
        return item_meta.known_shards(self.conn)

    def item_meta(self, paths: Iterable[str]) -> dict[str, item_meta.ItemMeta]:
        return item_meta.read(self.conn, paths)

    def close(self) -> None:
        try:
            self.vectors.close()
            self.conn.close()
        finally:
            self._release()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------------------------
    def _insert_items(self, start: int, items: Sequence[ItemRecord]) -> None:
        try:
            self.conn.executemany(
                "INSERT INTO items (id, path, source, size, mtime_ns, sha256, width, height) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(start + i, *_db_row(item)) for i, item in enumerate(items)],
            )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"an item being added is already in the store ({exc}); this is a bug in the caller") from exc

    def _stage(self, staged: Sequence[tuple[ItemRecord, np.ndarray]]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO staged (path, source, size, mtime_ns, sha256, width, height, vector) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*_db_row(r), np.asarray(v, DTYPE).reshape(self.dim).tobytes()) for r, v in staged],
        )

    def _staged_vector(self, path: str) -> np.ndarray:
        (blob,) = self.conn.execute("SELECT vector FROM staged WHERE path = ?", (to_db(path),)).fetchone()
        return np.frombuffer(blob, dtype=DTYPE)

    def _write_generation(self, path: Path, survivors: np.ndarray, replaced: dict[int, np.ndarray],
                          removed: set[int]) -> list[checksums.Block]:
        """Write the survivors' rows (``replaced`` substituted) to ``path``; returns the new file's blocks. Refuses
        to copy a damaged row (it would get a fresh, valid checksum): those are repaired or removed first."""
        old = map_rows(self.vectors.path, self.rows, self.dim)
        recorded = checksums.read_blocks(self.conn, 0, self.rows)
        damaged = set(checksums.damaged_rows(old, recorded, 0, self.rows).tolist()) - removed - set(replaced)
        if damaged:
            raise StoreDamaged(
                f"the store at {self.root} holds {len(damaged)} damaged vectors (rows {checksums.describe_rows(sorted(damaged))}); "
                f"compacting would hide the damage: run `cir repair --store {self.root}` first"
            )
        replaced_ids = np.array(sorted(replaced), dtype=np.int64)
        blocks: list[checksums.Block] = []
        with open(path, "wb") as fh:
            for start in range(0, len(survivors), COMPACTION_CHUNK_ROWS):
                chunk_ids = survivors[start : start + COMPACTION_CHUNK_ROWS]
                block = np.array(old[chunk_ids], dtype=DTYPE)
                hits = np.searchsorted(chunk_ids, replaced_ids)
                for i, pos in zip(replaced_ids, hits):
                    if pos < len(chunk_ids) and chunk_ids[pos] == i:
                        block[pos] = replaced[int(i)]
                _refuse_non_finite(block, lambda i: f"row {int(chunk_ids[i])}")
                blocks.extend(checksums.blocks_for(block, start))
                fh.write(block.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        del old
        fsync_dir(self.root)
        return blocks

    def _checksum_unchecked_rows(self, rows: int) -> None:
        """Record blocks for committed rows that have none (a store made before checksums); rows that are not
        finite stay uncovered, so readers and ``cir check`` keep reporting them."""
        self.conn.execute("CREATE TABLE IF NOT EXISTS blocks (start INTEGER PRIMARY KEY, count INTEGER NOT NULL, "
                          "crc32 INTEGER NOT NULL)")
        (covered,) = self.conn.execute("SELECT COALESCE(MAX(start + count), 0) FROM blocks").fetchone()
        if covered >= rows:
            return
        vectors = map_rows(self.vectors.path, rows, self.dim)
        bad = set(checksums.non_finite_rows(vectors, covered, rows).tolist())
        blocks = [b for b in checksums.blocks_for(vectors[covered:rows], covered)
                  if not bad.intersection(range(b.start, b.stop))]
        with db.write_transaction(self.conn):
            checksums.write_blocks(self.conn, blocks)

    def _renumber(self, survivors: np.ndarray) -> None:
        # ascending order: the new id of each row is free (smaller ids are settled, larger ones not yet moved)
        moves = [(new, int(old)) for new, old in enumerate(survivors.tolist()) if new != old]
        self.conn.executemany("UPDATE items SET id = ? WHERE id = ?", moves)

    def _check_rows(self, rows: int) -> None:
        count, top = self.conn.execute("SELECT COUNT(*), COALESCE(MAX(id), -1) FROM items").fetchone()
        if count != rows or top != rows - 1:
            raise StoreError(
                f"the store at {self.root} records {rows} rows but holds {count} items (largest id {top}); "
                "it is damaged: re-index into a new --store"
            )

    def _checkpointed(self) -> bool:
        """Copy every commit from the WAL into items.sqlite and sync both (SQLite syncs the WAL before and the
        database after a complete checkpoint); returns whether all of it got there. Only then may a file that the
        last durable state no longer names be deleted: ``synchronous=NORMAL`` leaves commits that are still only in
        the WAL to a power cut, and a power cut must never leave a state naming a deleted file."""
        _, wal_frames, copied = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return wal_frames == copied

    def _remove_orphans(self) -> None:
        """Vectors files of other generations are leftovers of an interrupted compaction (newer ones: never
        committed) or of a compaction whose checkpoint a reader held up (older ones: deleted once the commit that
        replaced them is checkpointed)."""
        older_safe: bool | None = None
        removed = False
        for generation in vector_generations(str(self.root)):
            if generation == self.generation:
                continue
            if generation < self.generation:
                older_safe = self._checkpointed() if older_safe is None else older_safe
                if not older_safe:
                    continue
            (self.root / vectors_name(generation)).unlink(missing_ok=True)
            removed = True
        if removed:
            fsync_dir(self.root)

    def _release(self) -> None:
        if self._lock_fd is not None:
            release_writer_lock(self._lock_fd)
            self._lock_fd = None


def _db_row(record: ItemRecord) -> tuple:
    """An :class:`ItemRecord` as SQLite parameters (paths losslessly, see :mod:`cir.store.pathcodec`)."""
    path, source, *rest = astuple(record)
    return (to_db(path), to_db(source), *rest)


def _refuse_non_finite(vectors: np.ndarray, name: Callable[[int], str]) -> None:
    """Vectors holding NaN or inf would rank first for every query (or never): they are never stored."""
    if len(vectors) == 0:
        return
    bad = checksums.non_finite_rows(vectors)
    if len(bad):
        listed = ", ".join(printable(name(i)) for i in bad[:3].tolist()) + (", ..." if len(bad) > 3 else "")
        raise StoreDamaged(f"refusing to store {len(bad)} vectors that hold NaN or infinite values ({listed}): "
                           "the model produced them, or a staged vector is damaged; nothing was written")

