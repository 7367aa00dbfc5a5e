"""The write side of a store: one process at a time, every change a crash-safe commit.

Internal API, used by the indexer, ``cir repair`` and ``benchmarks/bench_search.py`` to synthesise large stores:

    with StoreWriter(root) as writer:
        ids = writer.commit(new_items, vectors, remove_ids={3})   # new items get ids next_id.., item 3 is removed
        writer.compact()                                           # drop removed rows, apply staged repairs

Ids are stable: an item keeps its id for its whole life, and an id is never given again (``meta.next_id``). A row
of the vectors file is internal: ``rowids.<gen>.i64`` says which id each row holds (ascending, since ids are handed
out in append order and a compaction keeps the order).

Why a kill -9 at any moment leaves a consistent store (every committed row has its item, no id twice, nothing
half-applied):

* ``commit``: vectors and row ids are appended to the current generation's files and flushed (fsync'ed) *before*
  one SQLite transaction inserts the items, marks removed ones (``removed`` = the commit's version; their rows stay
  until a compaction), records tombstones for the persisted index and sets ``rows``, ``items`` and ``next_id``.
  Killed before the commit: the items do not exist and the appended bytes lie past the recorded row count, so the
  next writer truncates them; ``next_id`` is unchanged, so a re-run hands out the same ids. Killed after: all there.
* A changed file is a new item (new id, new row) and its old item is removed in the same commit: an id names one
  content, one vector, forever.
* ``compact``: the live rows (with staged repairs substituted) are written to a *new* generation's files,
  fsync'ed, and one transaction deletes the removed items, applies the staged metadata and switches
  ``meta.generation``. Ids do not change. Killed before the commit: the old generation is intact and the new files
  are orphans the next writer deletes. Killed after: the old files are. The old files are deleted only after a
  checkpoint has copied the commit from the WAL into items.sqlite and synced it (``synchronous=NORMAL`` leaves a
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
from cir.store.index_file import remove_orphan_index_files
from cir.store.layout import DB_NAME, rowids_name, vector_generations, vectors_name
from cir.store.lock import acquire_writer_lock, release_writer_lock
from cir.store.migrate import needs_migration
from cir.store.pathcodec import from_db, printable, to_db
from cir.store.vectors import DTYPE, ID_DTYPE, VectorAppender, fsync_dir, map_rowids, map_rows

COMPACTION_CHUNK_ROWS = 65_536  # rows copied per write while compacting


@dataclass(frozen=True)
class ItemRecord:
    """Metadata of one image as the store keeps it (its id is assigned by the writer: ``meta.next_id``)."""

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
            if needs_migration(meta):
                raise StoreError(f"the store at {self.root} has format {meta.get('format_version')}; open it with "
                                 "cir.open_store (or any cir command) first, which migrates it")
            self.dim = int(meta["dim"])
            self.generation = int(meta["generation"])
            self.next_id = int(meta["next_id"])
            self.live = int(meta["items"])
            rows = int(meta["rows"])
            self._remove_orphans()
            self.vectors = VectorAppender(self.root / vectors_name(self.generation), self.dim, rows, fsync)
            self.rowids = VectorAppender(self.root / rowids_name(self.generation), 1, rows, fsync, ID_DTYPE)
            self._check_rows(rows)
            self._checksum_unchecked_rows(rows)
            item_meta.ensure_tables(self.conn)
        except BaseException:
            self._release()
            raise

    # --- reading what is committed ---------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        """Committed rows (live items and removed ones whose rows a compaction has not dropped yet)."""
        return self.vectors.rows

    @property
    def dead_rows(self) -> int:
        """Rows of removed items, dropped by the next compaction."""
        return self.rows - self.live

    def meta(self) -> dict[str, str]:
        return db.get_meta(self.conn)

    def known_items(self) -> dict[str, KnownItem]:
        """Live items by path."""
        cursor = self.conn.execute("SELECT path, id, size, mtime_ns, sha256, source FROM items WHERE removed IS NULL")
        return {from_db(path): KnownItem(i, size, mtime, sha, from_db(source)) for path, i, size, mtime, sha, source in cursor}

    def staged_items(self) -> dict[str, ItemRecord]:
        cursor = self.conn.execute("SELECT path, source, size, mtime_ns, sha256, width, height FROM staged")
        records = (ItemRecord(from_db(path), from_db(source), *rest) for path, source, *rest in cursor)
        return {record.path: record for record in records}

    def row_ids(self) -> np.ndarray:
        """The id of every committed row (ascending), memory-mapped."""
        return map_rowids(self.rowids.path, self.rows)

    # --- writing ---------------------------------------------------------------------------------------------
    def commit(
        self,
        items: Sequence[ItemRecord],
        vectors: np.ndarray,
        staged: Sequence[tuple[ItemRecord, np.ndarray]] = (),
        touched: Sequence[MetadataTouch] = (),
        remove_ids: Iterable[int] = (),
        meta: Sequence[item_meta.ItemMeta] = (),
    ) -> list[int]:
        """Append new items with their vectors, remove ``remove_ids``, stage repaired vectors (``cir repair``),
        update touched metadata and the captions / JSON of items (``meta``, by path): one atomic commit. Returns
        the ids of the new items (``next_id`` onwards)."""
        vectors = np.asarray(vectors, dtype=DTYPE).reshape(len(items), self.dim)
        _refuse_non_finite(vectors, lambda i: items[i].path)
        _refuse_non_finite(np.array([np.asarray(v, DTYPE).reshape(self.dim) for _, v in staged], DTYPE).reshape(-1, self.dim),
                           lambda i: staged[i][0].path)
        removed = sorted({int(i) for i in remove_ids})
        start, first_id = self.rows, self.next_id
        ids = np.arange(first_id, first_id + len(items), dtype=ID_DTYPE)
        self.vectors.append(vectors)
        self.rowids.append(ids.reshape(-1, 1))
        try:
            with db.write_transaction(self.conn):
                version = int(db.get_meta(self.conn)["version"]) + 1
                gone = self._mark_removed(removed, version)
                if len(items):
                    checksums.write_blocks(self.conn, [checksums.Block(start, len(items), checksums.crc_of(vectors))])
                self._insert_items(first_id, items)
                self._stage(staged)
                item_meta.write(self.conn, meta)
                self.conn.executemany(
                    "UPDATE items SET size = ?, mtime_ns = ? WHERE id = ? AND removed IS NULL",
                    [(t.size, t.mtime_ns, t.id) for t in touched],
                )
                live = self.live + len(items) - gone
                db.set_meta(self.conn, {"next_id": first_id + len(items), "items": live})
                db.bump_versions(self.conn, rows=start + len(items))
        except BaseException:
            self.vectors.rollback_to(start)
            self.rowids.rollback_to(start)
            raise
        self.next_id += len(items)
        self.live = live
        return ids.tolist()

    def remove(self, ids: Iterable[int]) -> int:
        """Remove items (one commit); returns how many were live."""
        before = self.live
        self.commit([], np.zeros((0, self.dim), DTYPE), remove_ids=ids)
        return before - self.live

    def compact(self, remove_ids: Iterable[int] = (), keep_staged: set[str] | None = None) -> bool:
        """Remove ``remove_ids`` (a commit of its own), then drop the rows of removed items and apply staged repairs
        (those whose path is in ``keep_staged``, or all when None; the others are discarded) in a new generation.
        Ids never change. Returns whether a new generation was written."""
        remove = {int(i) for i in remove_ids}
        if remove:
            self.remove(remove)
        staged = self.staged_items()
        keep = {p: r for p, r in staged.items() if keep_staged is None or p in keep_staged}
        ids_by_path = {p: k.id for p, k in self.known_items().items()}
        updates = {ids_by_path[p]: r for p, r in keep.items() if p in ids_by_path}
        if not self.dead_rows and not updates:
            if staged:  # only stale staged rows: discard them
                with db.write_transaction(self.conn):
                    self.conn.execute("DELETE FROM staged")
            return False
        row_ids = self.row_ids()
        live_ids = np.fromiter((i for (i,) in self.conn.execute("SELECT id FROM items WHERE removed IS NULL ORDER BY id")),
                               dtype=np.int64)
        survivors = np.searchsorted(row_ids, live_ids)  # rows of the live items (row ids ascending)
        if len(survivors) and (survivors.max() >= self.rows or not np.array_equal(row_ids[survivors], live_ids)):
            raise StoreError(f"the store at {self.root} has items without a vector row; it is damaged: re-index into a new --store")
        replaced = {int(np.searchsorted(row_ids, i)): self._staged_vector(r.path) for i, r in updates.items()}
        dead = set(range(self.rows)) - set(survivors.tolist()) if self.dead_rows else set()
        new_generation = self.generation + 1
        new_path = self.root / vectors_name(new_generation)
        new_ids_path = self.root / rowids_name(new_generation)
        try:
            new_blocks = self._write_generation(new_path, survivors, replaced, dead)
            _write_file(new_ids_path, live_ids.astype(ID_DTYPE).tobytes())
            fsync_dir(self.root)
            with db.write_transaction(self.conn):
                self.conn.execute("DELETE FROM blocks")
                checksums.write_blocks(self.conn, new_blocks)
                self.conn.execute("DELETE FROM items WHERE removed IS NOT NULL")
                self._apply_staged(updates)
                self.conn.execute("DELETE FROM staged")
                item_meta.prune(self.conn)
                db.bump_versions(self.conn, rows=len(survivors), generation=new_generation, layout_changed=True)
        except BaseException:
            new_path.unlink(missing_ok=True)
            new_ids_path.unlink(missing_ok=True)
            raise
        old_paths = (self.vectors.path, self.rowids.path)
        self.vectors.close()
        self.rowids.close()
        self.generation = new_generation
        self.vectors = VectorAppender(new_path, self.dim, len(survivors), self.vectors.fsync)
        self.rowids = VectorAppender(new_ids_path, 1, len(survivors), self.rowids.fsync, ID_DTYPE)
        if self._checkpointed():  # else a reader holds the WAL: the old generation stays until a later writer's checkpoint
            for old in old_paths:
                old.unlink(missing_ok=True)
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
            self.rowids.close()
            self.conn.close()
        finally:
            self._release()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------------------------
    def _apply_staged(self, updates: dict[int, ItemRecord]) -> None:
        """A repaired item's metadata as its file was read again (inside the compaction's transaction)."""
        self.conn.executemany(
            "UPDATE items SET source = ?, size = ?, mtime_ns = ?, sha256 = ?, width = ?, height = ? WHERE id = ?",
            [(to_db(r.source), r.size, r.mtime_ns, r.sha256, r.width, r.height, i) for i, r in updates.items()],
        )

    def _mark_removed(self, ids: list[int], version: int) -> int:
        """Mark live items removed at ``version`` (their rows stay until a compaction) and tombstone the ones the
        persisted index holds; returns how many were live."""
        if not ids:
            return 0
        before = self.conn.total_changes
        self.conn.executemany("UPDATE items SET removed = ? WHERE id = ? AND removed IS NULL", [(version, i) for i in ids])
        gone = self.conn.total_changes - before
        bound = int(db.get_meta(self.conn).get("index_bound", 0))
        self.conn.executemany("INSERT OR IGNORE INTO tombstones (id) VALUES (?)", [(i,) for i in ids if i < bound])
        return gone

    def _insert_items(self, first_id: int, items: Sequence[ItemRecord]) -> None:
        try:
            self.conn.executemany(
                "INSERT INTO items (id, path, source, size, mtime_ns, sha256, width, height) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(first_id + i, *_db_row(item)) for i, item in enumerate(items)],
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
        """Write the survivors' rows (``replaced``, by old row, substituted) to ``path``; returns the new file's
        blocks. Refuses to copy a damaged row (it would get a fresh, valid checksum): those are repaired or removed
        first."""
        old = map_rows(self.vectors.path, self.rows, self.dim)
        recorded = checksums.read_blocks(self.conn, 0, self.rows)
        damaged = set(checksums.damaged_rows(old, recorded, 0, self.rows).tolist()) - removed - set(replaced)
        if damaged:
            row_ids = self.row_ids()
            ids = sorted(int(row_ids[r]) for r in damaged)
            raise StoreDamaged(
                f"the store at {self.root} holds {len(damaged)} damaged vectors (items {checksums.describe_rows(ids)}); "
                f"compacting would hide the damage: run `cir repair --store {self.root}` first"
            )
        replaced_rows = np.array(sorted(replaced), dtype=np.int64)
        blocks: list[checksums.Block] = []
        with open(path, "wb") as fh:
            for start in range(0, len(survivors), COMPACTION_CHUNK_ROWS):
                chunk_rows = survivors[start : start + COMPACTION_CHUNK_ROWS]
                block = np.array(old[chunk_rows], dtype=DTYPE)
                hits = np.searchsorted(chunk_rows, replaced_rows)
                for r, pos in zip(replaced_rows, hits):
                    if pos < len(chunk_rows) and chunk_rows[pos] == r:
                        block[pos] = replaced[int(r)]
                _refuse_non_finite(block, lambda i: f"row {int(chunk_rows[i])}")
                blocks.extend(checksums.blocks_for(block, start))
                fh.write(block.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        del old
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

    def _check_rows(self, rows: int) -> None:
        count, live, top = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(removed IS NULL), 0), COALESCE(MAX(id), -1) FROM items").fetchone()
        if count != rows or live != self.live or top >= self.next_id:
            raise StoreError(
                f"the store at {self.root} records {rows} rows, {self.live} items and next id {self.next_id} but holds "
                f"{count} item records ({live} live, largest id {top}); it is damaged: re-index into a new --store"
            )

    def checkpointed(self) -> bool:
        return self._checkpointed()

    def _checkpointed(self) -> bool:
        """Copy every commit from the WAL into items.sqlite and sync both (SQLite syncs the WAL before and the
        database after a complete checkpoint); returns whether all of it got there. Only then may a file that the
        last durable state no longer names be deleted: ``synchronous=NORMAL`` leaves commits that are still only in
        the WAL to a power cut, and a power cut must never leave a state naming a deleted file."""
        _, wal_frames, copied = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return wal_frames == copied

    def _remove_orphans(self) -> None:
        """Row files of other generations are leftovers of an interrupted compaction (newer ones: never
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
            for name in (vectors_name(generation), rowids_name(generation)):
                (self.root / name).unlink(missing_ok=True)
            removed = True
        if removed:
            fsync_dir(self.root)
        remove_orphan_index_files(self.root, db.get_meta(self.conn), self._checkpointed)

    def _release(self) -> None:
        if self._lock_fd is not None:
            release_writer_lock(self._lock_fd)
            self._lock_fd = None


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


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

