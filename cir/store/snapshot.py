"""An immutable view of one committed state of a store: its rows, which of them are live, and the searcher.

Readers take a snapshot inside one SQLite read transaction, so meta, row count, the removed items, tombstones and
the row files always belong to the same commit. Opening is light whatever the size: the row files are
memory-mapped, the persisted index (when there is one) too, and no item metadata is read: :meth:`Snapshot.item`
reads one item's record when a caller asks for it (a hit, ``/items/{id}``). Ids are stable and an item's path,
content hash and size in pixels never change, so reading the record later answers for this commit; an item removed
after it stays readable until a compaction drops it.

Checksums are verified lazily (:class:`RowVerifier`): a row's block is checked the first time the row is scored
or read (an exact scan checks every row it scans, a hit from the index the rows it returns), and the verified
blocks are remembered across snapshots of the same generation. A damaged row is never ranked or returned.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cir.errors import StoreDamaged, StoreError, SnapshotOutdated
from cir.index.searcher import StoreSearcher
from cir.store import checksums, db
from cir.store.index_file import StoreIndex, open_store_index
from cir.store.layout import rowids_name, vectors_name
from cir.store.pathcodec import from_db
from cir.store.vectors import map_rowids, map_rows

PATHS_CHUNK = 500  # ids per SQL statement in Snapshot.paths (SQLite's host-parameter limit is 32,766; small is enough)
SNAPSHOT_ATTEMPTS = 20  # a compaction can replace the row files between reading meta and opening them: retry
ITEM_SELECT = "SELECT id, path, size, mtime_ns, sha256, width, height FROM items"


@dataclass(frozen=True)
class ItemInfo:
    """What the store knows about one image."""

    id: int  # stable: never changes, never reused
    path: str  # absolute path
    size: int  # bytes
    mtime: float  # modification time when indexed (seconds since the epoch)
    sha256: str  # hex digest of the content
    width: int  # pixels, as displayed
    height: int

    def to_json(self) -> dict:
        return {"id": self.id, "path": self.path, "size": self.size, "mtime": self.mtime, "sha256": self.sha256,
                "width": self.width, "height": self.height}


def _info(record) -> ItemInfo:
    item_id, path, size, mtime_ns, sha, width, height = record
    return ItemInfo(int(item_id), from_db(path), int(size), int(mtime_ns) / 1e9, sha, int(width), int(height))


class RowVerifier:
    """Checks rows against their recorded checksums (rows no block covers: for finite values) the first time they
    are touched, and raises :class:`~cir.errors.StoreDamaged` naming the damaged items."""

    def __init__(self, root: Path, vectors: np.ndarray, row_ids: np.ndarray, blocks: list[checksums.Block] | None,
                 rows: int, generation: int, verified: set, lock: threading.Lock) -> None:
        self.root, self.vectors, self.row_ids, self.rows = root, vectors, row_ids, rows
        segments: list[tuple[int, int, int | None]] = []
        at = 0
        for b in sorted(blocks or (), key=lambda b: b.start):
            if b.stop > rows or b.start < at:
                continue  # a block past the rows read belongs to a later commit
            if b.start > at:
                segments.append((at, b.start, None))
            segments.append((b.start, b.stop, b.crc32))
            at = b.stop
        if at < rows:
            segments.append((at, rows, None))
        self.segments = segments
        self.starts = np.array([s for s, _, _ in segments], np.int64)
        self.keys = [(generation, *seg) for seg in segments]
        self.verified, self.lock = verified, lock  # shared by the store's snapshots: each block checked once
        self.damaged: set[int] = set()  # damaged rows found so far

    def all(self) -> None:
        self(( 0, self.rows))

    def __call__(self, rows) -> None:
        if not self.segments:
            return
        if isinstance(rows, tuple):
            start, stop = rows
            if stop <= start:
                return
            first = int(np.searchsorted(self.starts, start, "right")) - 1
            last = int(np.searchsorted(self.starts, stop - 1, "right")) - 1
            wanted = range(max(first, 0), last + 1)
        else:
            rows = np.asarray(rows, np.int64)
            if not len(rows):
                return
            wanted = np.unique(np.searchsorted(self.starts, rows, "right") - 1).tolist()
        bad: list[int] = []
        for seg in wanted:
            key = self.keys[seg]
            if key in self.verified:
                continue
            start, stop, crc = self.segments[seg]
            if crc is not None:
                found = (np.arange(start, stop) if checksums.crc_of(self.vectors[start:stop]) != crc
                         else np.zeros(0, np.int64))
            else:
                found = checksums.non_finite_rows(self.vectors, start, stop)
            if len(found):
                bad.extend(found.tolist())
            else:
                with self.lock:
                    self.verified.add(key)
        if bad:
            self.damaged.update(bad)
            raise StoreDamaged(damage_message(self.root, sorted(int(self.row_ids[r]) for r in self.damaged)))


def damage_message(root: Path, ids: list[int]) -> str:
    return (f"the store at {root} holds {len(ids)} damaged vectors (items {checksums.describe_rows(ids)}: they fail "
            f"their checksum or are not finite numbers); `cir check --store {root}` lists them and "
            f"`cir repair --store {root}` re-embeds them from their image files")


@dataclass(frozen=True)
class Snapshot:
    root: Path  # the store directory
    version: int  # meta.version of the commit this view shows
    layout_version: int  # meta.layout_version of that commit
    generation: int  # row files generation
    rows: int  # committed rows (live and removed-not-yet-compacted)
    next_id: int  # ids below it were handed out by this commit
    vectors: np.ndarray  # (rows, dim) float32, read-only (memory-mapped)
    row_ids: np.ndarray  # (rows,) int64 ascending, the id each row holds (memory-mapped)
    searcher: StoreSearcher  # the first stage over this commit (cir.index.searcher)
    verify: RowVerifier  # lazy checksum checks of the rows
    index: StoreIndex | None  # the persisted index this commit names (None: exact scan only)
    conn: object = field(repr=False)  # the store's reader connection (item records are read on demand)
    conn_lock: threading.Lock = field(repr=False, default_factory=threading.Lock)

    def __len__(self) -> int:
        return len(self.searcher)

    @property
    def damaged(self) -> np.ndarray:
        """Rows found damaged so far (checks are lazy: :meth:`RowVerifier.all` checks every row)."""
        return np.array(sorted(self.verify.damaged), np.int64)

    def contains(self, item_id: int) -> bool:
        return self.searcher.contains(int(item_id))

    def item(self, item_id: int) -> ItemInfo:
        """The record of a live item of this commit (KeyError otherwise)."""
        if not self.contains(item_id):
            raise KeyError(item_id)
        with self.conn_lock:
            record = self.conn.execute(ITEM_SELECT + " WHERE id = ?", (int(item_id),)).fetchone()
        if record is None:
            raise SnapshotOutdated(f"item {item_id} was removed and compacted away after this search began; search again")
        return _info(record)

    def path(self, item_id: int) -> str:
        return self.item(item_id).path

    def paths(self, item_ids) -> list[str]:
        """The paths of live items of this commit, in the order given, in one read per chunk of ids (a hit list
        reads its paths at once: one SQLite round trip per hit was a tenth of a composed query at 1M items)."""
        wanted = [int(i) for i in item_ids]
        for i in wanted:
            if not self.contains(i):
                raise KeyError(i)
        found: dict[int, str] = {}
        unique = sorted(set(wanted))
        for start in range(0, len(unique), PATHS_CHUNK):
            chunk = unique[start:start + PATHS_CHUNK]
            with self.conn_lock:
                records = self.conn.execute(ITEM_SELECT + f" WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            found.update((int(r[0]), _info(r).path) for r in records)
        missing = [i for i in wanted if i not in found]
        if missing:
            raise SnapshotOutdated(f"item {missing[0]} was removed and compacted away after this search began; search again")
        return [found[i] for i in wanted]

    def describe_ids(self) -> str:
        ids = self.searcher.live_ids()
        if not len(ids):
            return "the store is empty"
        return (f"it holds {len(ids)} items with ids from {int(ids[0])} to {int(ids[-1])} (ids are stable: a removed "
                "item's id is never given again)")

    def items(self, batch: int = 10_000):
        """Every live item of this commit, by id."""
        after = -1
        while True:
            with self.conn_lock:
                records = self.conn.execute(
                    ITEM_SELECT + " WHERE id > ? AND id < ? AND (removed IS NULL OR removed > ?) ORDER BY id LIMIT ?",
                    (after, self.next_id, self.version, batch)).fetchall()
            if not records:
                return
            for record in records:
                if self.contains(record[0]):
                    yield _info(record)
            after = records[-1][0]

    def ids_with_sha(self, sha256_hex: str) -> list[int]:
        with self.conn_lock:
            ids = [i for (i,) in self.conn.execute("SELECT id FROM items WHERE sha256 = ?", (sha256_hex,))]
        return sorted(i for i in ids if self.contains(i))

    def ids_under(self, folder: str) -> np.ndarray:
        """Live ids whose path lies under ``folder`` (an absolute directory path, compared by path components)."""
        prefix = folder.rstrip("/") + "/"
        upper = prefix[:-1] + chr(ord("/") + 1)  # every string starting with prefix sorts in [prefix, upper)
        with self.conn_lock:
            ids = [i for (i,) in self.conn.execute(
                "SELECT id FROM items WHERE path >= ? AND path < ? AND typeof(path) = 'text'", (prefix, upper))]
            raw = os.fsencode(prefix)  # names that are not UTF-8 are kept as raw bytes (cir.store.pathcodec)
            ids += [i for i, p in self.conn.execute("SELECT id, path FROM items WHERE typeof(path) = 'blob'")
                    if bytes(p).startswith(raw)]
        found = np.unique(np.array(ids, np.int64))
        return np.array([i for i in found.tolist() if self.contains(i)], np.int64)


def load_snapshot(root: Path, conn, dim: int, previous: Snapshot | None = None, verified: set | None = None,
                  conn_lock: threading.Lock | None = None) -> Snapshot:
    """The latest committed state; ``previous`` when nothing changed."""
    missing_at = None  # (version, generation) whose row files were missing at the last attempt
    lock = conn_lock or threading.Lock()
    for _ in range(SNAPSHOT_ATTEMPTS):
        with lock, db.read_transaction(conn):
            meta = db.get_meta(conn)
            version, layout, generation, rows = (int(meta[k]) for k in ("version", "layout_version", "generation", "rows"))
            if previous is not None and previous.version == version:
                return previous
            next_id = int(meta["next_id"])
            removed = np.array([i for (i,) in conn.execute("SELECT id FROM items WHERE removed IS NOT NULL")], np.int64)
            tombstones = np.array(sorted(i for (i,) in conn.execute("SELECT id FROM tombstones")), np.int64)
            blocks = checksums.read_blocks(conn, 0, rows)
            vectors_path = root / vectors_name(generation)
            try:
                vectors = map_rows(vectors_path, rows, dim)
                row_ids = map_rowids(root / rowids_name(generation), rows)
            except FileNotFoundError:
                if missing_at == (version, generation):  # missing in the same commit twice: not a compaction
                    raise StoreDamaged(
                        f"the vectors file {vectors_path} (or its row ids) is missing, and the store at {root} records "
                        f"{rows} vectors in it (it was deleted outside cir); re-index into a new --store (the image "
                        "files are not affected)"
                    ) from None
                missing_at = (version, generation)
                continue  # a compaction replaced the file after our transaction began: read the new state
            except IsADirectoryError:
                raise StoreDamaged(f"{vectors_path} is a directory, where the store keeps its vectors; move it away "
                                   "and re-index into a new --store") from None
            index = open_store_index(root, meta, previous.index if previous is not None else None)
        dead = np.searchsorted(row_ids, removed) if len(removed) else np.zeros(0, np.int64)
        if len(dead) and (dead.max() >= rows or not np.array_equal(row_ids[dead], removed)):
            raise StoreError(f"the store at {root} records removed items without vector rows; re-index into a new --store")
        verify = RowVerifier(root, vectors, row_ids, blocks, rows, generation, verified if verified is not None else set(),
                             threading.Lock())
        searcher = StoreSearcher(vectors, row_ids, np.sort(dead), index=index.index if index else None,
                                 index_bound=index.bound if index else 0, tombstones=tombstones, verify=verify)
        return Snapshot(root=root, version=version, layout_version=layout, generation=generation, rows=rows,
                        next_id=next_id, vectors=vectors, row_ids=row_ids, searcher=searcher, verify=verify,
                        index=index, conn=conn, conn_lock=lock)
    raise StoreError(f"the store at {root} kept changing while being read ({SNAPSHOT_ATTEMPTS} attempts); try again")
