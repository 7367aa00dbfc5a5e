"""An immutable view of one committed state of a store: item metadata, vectors and the search index.

Readers take a snapshot inside one SQLite read transaction, so metadata, row count and vectors file always belong
to the same commit. Appends since the previous snapshot extend it (the index grows in place; older snapshots
ignore rows past their own count); anything else (compaction, metadata updates) builds a new one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cir.errors import StoreDamaged, StoreError
from cir.index import VectorIndex, build_index
from cir.index.searcher import IndexSearcher
from cir.store import checksums, db
from cir.store.layout import vectors_name
from cir.store.pathcodec import from_db
from cir.store.vectors import map_rows

SNAPSHOT_ATTEMPTS = 20  # a compaction can replace the vectors file between reading meta and opening it: retry


@dataclass(frozen=True)
class ItemInfo:
    """What the store knows about one image."""

    id: int  # = its vector row
    path: str  # absolute path
    size: int  # bytes
    mtime: float  # modification time when indexed (seconds since the epoch)
    sha256: str  # hex digest of the content
    width: int  # pixels, as displayed
    height: int

    def to_json(self) -> dict:
        return {"id": self.id, "path": self.path, "size": self.size, "mtime": self.mtime, "sha256": self.sha256,
                "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Snapshot:
    version: int  # meta.version of the commit this view shows
    layout_version: int  # meta.layout_version of that commit
    generation: int  # vectors file generation
    rows: int  # items = vector rows
    paths: tuple[str, ...]  # per row
    sizes: np.ndarray  # int64 per row
    mtimes_ns: np.ndarray  # int64 per row
    sha256: np.ndarray  # (rows, 32) uint8 raw digests
    widths: np.ndarray  # int32 per row
    heights: np.ndarray  # int32 per row
    vectors: np.ndarray  # (rows, dim) float32, read-only (memory-mapped)
    index: VectorIndex  # may hold more rows than ``rows`` (a newer snapshot extended it): ignore those
    index_lock: threading.Lock  # serialises calls into ``index`` (faiss add is not safe beside a search)
    searcher: IndexSearcher  # the first stage over this commit's rows (cir.index.searcher)
    damaged: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # rows failing their checksum or not finite (searching them refuses)

    def __len__(self) -> int:
        return self.rows

    def path(self, item_id: int) -> str:
        return self.paths[item_id]

    def item(self, item_id: int) -> ItemInfo:
        if not 0 <= item_id < self.rows:
            raise KeyError(item_id)
        return ItemInfo(item_id, self.paths[item_id], int(self.sizes[item_id]), int(self.mtimes_ns[item_id]) / 1e9,
                        self.sha256[item_id].tobytes().hex(), int(self.widths[item_id]), int(self.heights[item_id]))

    def ids_with_sha(self, sha256_hex: str) -> list[int]:
        digest = np.frombuffer(bytes.fromhex(sha256_hex), np.uint8)
        return np.flatnonzero(np.all(self.sha256 == digest, axis=1)).tolist()


def load_snapshot(root: Path, conn, dim: int, index_kind: str, previous: Snapshot | None = None) -> Snapshot:
    """The latest committed state; ``previous`` when nothing changed, an extension of it after pure appends."""
    missing_at = None  # (version, generation) whose vectors file was missing at the last attempt
    for _ in range(SNAPSHOT_ATTEMPTS):
        with db.read_transaction(conn):
            meta = db.get_meta(conn)
            version, layout, generation, rows = (int(meta[k]) for k in ("version", "layout_version", "generation", "rows"))
            if previous is not None and previous.version == version:
                return previous
            extend = (
                previous is not None and previous.generation == generation
                and previous.layout_version == layout and rows >= previous.rows
            )
            start = previous.rows if extend else 0
            records = conn.execute(
                "SELECT id, path, size, mtime_ns, sha256, width, height FROM items WHERE id >= ? ORDER BY id", (start,)
            ).fetchall()
            blocks = checksums.read_blocks(conn, start, rows)
            vectors_path = root / vectors_name(generation)
            try:
                vectors = map_rows(vectors_path, rows, dim)
            except FileNotFoundError:
                if missing_at == (version, generation):  # missing in the same commit twice: not a compaction
                    raise StoreDamaged(
                        f"the vectors file {vectors_path} is missing, and the store at {root} records {rows} vectors "
                        "in it (it was deleted outside cir); re-index into a new --store (the image files are not "
                        "affected)"
                    ) from None
                missing_at = (version, generation)
                continue  # a compaction replaced the file after our transaction began: read the new state
            except IsADirectoryError:
                raise StoreDamaged(f"{vectors_path} is a directory, where the store keeps its vectors; move it away "
                                   "and re-index into a new --store") from None
        if len(records) != rows - start or (records and (records[0][0] != start or records[-1][0] != rows - 1)):
            raise StoreError(f"the store at {root} records {rows} rows but its items do not match; re-index into a new --store")
        damaged = checksums.damaged_rows(vectors, blocks, start, rows)
        return _build(records, vectors, version, layout, generation, rows, dim, index_kind, previous if extend else None,
                      damaged)
    raise StoreError(f"the store at {root} kept changing while being read ({SNAPSHOT_ATTEMPTS} attempts); try again")


def _build(records, vectors, version, layout, generation, rows, dim, index_kind, base: Snapshot | None,
           damaged: np.ndarray) -> Snapshot:
    _, paths, sizes, mtimes, shas, widths, heights = zip(*records) if records else ((),) * 7
    new = dict(
        paths=tuple(from_db(p) for p in paths),
        sizes=np.array(sizes, np.int64),
        mtimes_ns=np.array(mtimes, np.int64),
        sha256=np.frombuffer(b"".join(bytes.fromhex(s) for s in shas), np.uint8).reshape(-1, 32),
        widths=np.array(widths, np.int32),
        heights=np.array(heights, np.int32),
    )
    if base is None:
        index, lock = build_index(index_kind, dim), threading.Lock()
        first = 0
    else:
        index, lock = base.index, base.index_lock
        first = base.rows
        damaged = np.concatenate([base.damaged, damaged])
        new = {
            "paths": base.paths + new["paths"],
            **{key: np.concatenate([getattr(base, key), value]) for key, value in new.items() if key != "paths"},
        }
    with lock:
        if len(index) > first:  # another snapshot already extended the shared index past our start
            first = len(index)
        if rows > first:
            index.add(np.asarray(vectors[first:rows]))
    return Snapshot(version=version, layout_version=layout, generation=generation, rows=rows, vectors=vectors,
                    index=index, index_lock=lock, searcher=IndexSearcher(index, vectors, rows, lock), damaged=damaged,
                    **new)
