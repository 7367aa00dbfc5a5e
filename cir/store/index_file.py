"""The store's persisted index: one file, written atomically with the commit it reflects, opened memory-mapped.

Design (docs/store.md, "The index"): an index file plus an exact-scored tail.

* ``flat`` (the default for small stores) has no file: the memory-mapped vectors file is scanned exactly.
* Any other kind is a :class:`~cir.index.base.VectorIndex` built from the live items, holding the ids below
  ``meta.index_bound``. Items added later (ids at or above the bound: the *tail*) are scored exactly from the vectors
  file and merged with the index's answer; items removed later are *tombstones* (table ``tombstones``), left out at
  search time. Ids are stable, so a compaction (which moves rows) leaves the index valid.
* At the end of every ``cir index`` run, :func:`maintain_index` decides (a function of the committed state only, so
  a killed and re-run indexing reaches the same decision as an uninterrupted one):

  - **build** when the store names no index file, or the file is of another kind than asked;
  - **rebuild** when tombstones pass :data:`TOMBSTONE_REBUILD_FRACTION` of the ids the index holds;
  - **retrain** (a rebuild) when a training-based kind's live items pass :data:`RETRAIN_GROWTH` times the vectors
    it was trained on (``cir info`` prints the number);
  - **fold** the tail in (the index read into memory, the tail added with its ids, the tombstones removed by the
    index's own ``remove`` where the kind supports it, written as a new file) when the tail passes
    :data:`FOLD_FRACTION` of the index or :data:`FOLD_MAX_TAIL` items;
  - otherwise nothing: the tail stays exact.

Writing one: ``index.<serial>.faiss.tmp`` is written and fsync'ed, renamed to ``index.<serial>.faiss``, the directory
fsync'ed, then one transaction records ``index_file``, ``index_bound``, ``index_info`` (kind, factory string,
parameters, trained-on size, tuning) and clears the tombstones a rebuild absorbed. Killed before the commit: the new
file is an orphan (not named by meta) the next writer deletes, and readers keep using the old one. The replaced file
is deleted only after a checkpoint made its replacement durable (as vectors generations are); a reader that mapped
it keeps its mapping.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cir.errors import StoreDamaged, StoreError
from cir.store import checksums, db
from cir.store.vectors import fsync_dir, map_rowids, map_rows

if TYPE_CHECKING:
    from cir.index.base import VectorIndex
    from cir.store.writer import StoreWriter

FLAT = "flat"  # no file: exact scan of the vectors file
AUTO = "auto"  # chosen by cir.index.choose_index from the size, dimension and memory budget
DEFAULT_KIND = AUTO  # a store that was never asked for a kind: auto (flat below cir.index.auto.FLAT_BELOW items)
INDEX_PATTERN = re.compile(r"^index\.(\d+)\.faiss(\.tmp)?$")
TOMBSTONE_REBUILD_FRACTION = 0.10  # rebuild when tombstones pass this fraction of the ids the index holds
RETRAIN_GROWTH = 4.0  # retrain a training-based kind when live items pass this multiple of its training set
FOLD_FRACTION = 0.05  # fold the exact tail into the index when it passes this fraction of the index ...
FOLD_MAX_TAIL = 50_000  # ... or this many items, whichever comes first
TRAIN_SAMPLE = 262_144  # vectors a training-based kind is trained on (an even stride over the live rows)
TUNE_QUERIES = 200  # held-out queries (stored vectors, an even stride) for tuning against exact search
ADD_CHUNK = 65_536  # rows added to an index per call


@dataclass
class IndexSettings:
    """What the caller asks of the store's index (``cir index --index``, ``cir reindex``, ``open_store(index=)``)."""

    kind: str | None = None  # a kind of cir.index.INDEX_KINDS, "flat" or "auto"; None: keep the store's
    memory_bytes: int | None = None  # budget for the index (auto's choice); None: no limit
    recall: float = 0.95  # 10-recall@10 target the search parameters are tuned to (approximate kinds)
    params: dict | None = None  # the kind's build parameters (None: the kind's or auto's defaults)


@dataclass
class StoreIndex:
    """The persisted index a commit names."""

    name: str  # file name in the store
    bound: int  # ids below it are in the index
    index: "VectorIndex"  # loaded memory-mapped
    info: dict  # kind, factory, params, trained_on, tuning, built_version

    def describe(self) -> dict:
        return {**self.info, "file": self.name, "bound": self.bound}


def index_name(serial: int) -> str:
    return f"index.{serial:06d}.faiss"


def stored_info(meta: dict[str, str]) -> dict:
    return json.loads(meta.get("index_info") or "{}")


def open_store_index(root: Path, meta: dict[str, str], previous: StoreIndex | None) -> StoreIndex | None:
    """The index ``meta`` names, memory-mapped (``previous`` again when it is the same file)."""
    name = meta.get("index_file") or ""
    if not name:
        return None
    bound = int(meta.get("index_bound", 0))
    if previous is not None and previous.name == name:
        return previous if previous.bound == bound else StoreIndex(name, bound, previous.index, previous.info)
    from cir.index import load_index

    path = root / name
    if not path.exists():
        raise StoreDamaged(f"the index file {path} is missing, and the store at {root} names it (it was deleted outside "
                           f"cir); rebuild it with `cir reindex --store {root}`")
    info = stored_info(meta)
    index = load_index(str(path), mmap=True)
    tuned = (info.get("tuning") or {}).get("params")
    if tuned:  # the search parameters tuning chose, whatever the file kept
        index.set_search_params(**tuned)
    return StoreIndex(name, bound, index, info)


def describe_index(meta: dict[str, str], tombstones: int, tail: int) -> dict:
    """What ``cir info`` prints about the index: the kind asked, what the file holds and when it changes next."""
    info = stored_info(meta)
    out = {"kind": meta.get("index_kind") or DEFAULT_KIND, "file": meta.get("index_file") or None,
           "bound": int(meta.get("index_bound", 0)), "tombstones": tombstones, "tail": tail, **info}
    held = int(info.get("ntotal", 0))
    if out["file"]:
        out["rebuild_when_tombstones_pass"] = int(TOMBSTONE_REBUILD_FRACTION * max(held, 1))
        out["fold_tail_when_it_passes"] = int(min(FOLD_FRACTION * max(held, 1), FOLD_MAX_TAIL))
        if info.get("needs_training"):
            out["retrain_when_items_pass"] = int(RETRAIN_GROWTH * int(info.get("trained_on", 0)))
    return out


# --- writing (the writer holds the lock) ---------------------------------------------------------------------------
def maintain_index(writer: "StoreWriter", settings: IndexSettings | None = None, force: bool = False) -> str:
    """Bring the store's index up to date after a run; returns what it did ("none", "build", "rebuild", "retrain",
    "fold", "drop")."""
    settings = settings or IndexSettings()
    meta = writer.meta()
    asked = settings.kind or meta.get("index_kind") or DEFAULT_KIND
    info = stored_info(meta)
    if asked != (meta.get("index_kind") or DEFAULT_KIND) or settings.memory_bytes is not None:
        with db.write_transaction(writer.conn):
            values: dict[str, object] = {"index_kind": asked}
            if settings.memory_bytes is not None:
                values["index_memory"] = settings.memory_bytes
            db.set_meta(writer.conn, values)
    memory = settings.memory_bytes if settings.memory_bytes is not None else _int_or_none(meta.get("index_memory"))
    asked_params = settings.params
    if asked_params is None and asked == info.get("kind"):  # a rebuild keeps the parameters the file was built with
        asked_params = info.get("build_params")
    kind, params, reason, train_size = _resolve(asked, writer.live, writer.dim, memory, asked_params)
    current = meta.get("index_file") or ""
    if asked == AUTO and current and not force and str(info.get("reason", "")).startswith("auto:"):
        # auto keeps the kind it chose (a store crossing one of choose_index's size thresholds by a few items must
        # not rebuild): rebuilds and retrains keep it too; `cir reindex --index auto` (force) chooses again
        kind, params = info.get("kind", kind), dict(info.get("build_params") or params)
        reason = info["reason"]
    if kind == FLAT:
        if current:
            _commit_index(writer, None, {}, bound=0, clear_tombstones=True)
            return "drop"
        return "none"
    held = int(info.get("ntotal", 0))
    tombstones = writer.conn.execute("SELECT COUNT(*) FROM tombstones").fetchone()[0]
    bound = int(meta.get("index_bound", 0))
    tail = writer.conn.execute("SELECT COUNT(*) FROM items WHERE removed IS NULL AND id >= ?",
                               (bound if current else 0,)).fetchone()[0]
    if force or not current or info.get("kind") != kind or (settings.params and settings.params != info.get("build_params")):
        action = "build" if not current else "rebuild"
    elif tombstones > TOMBSTONE_REBUILD_FRACTION * max(held, 1):
        action = "rebuild"
    elif info.get("needs_training") and writer.live > RETRAIN_GROWTH * max(int(info.get("trained_on", 0)), 1):
        action = "retrain"
    elif tail > min(FOLD_FRACTION * max(held, 1), FOLD_MAX_TAIL):
        action = "fold"
    else:
        return "none"
    if writer.live == 0:
        return "none"
    if action == "fold":
        index = _load_for_fold(writer, current)
        ids, vectors = _live_rows(writer, first_id=bound)
        _add(index, vectors, ids)
        removed = False
        if index.supports_remove and tombstones:  # the kind's own removal: the tombstones are absorbed
            dead = np.array([i for (i,) in writer.conn.execute("SELECT id FROM tombstones")], np.int64)
            index.remove(dead)
            removed = True
        new_info = {**info, "ntotal": int(index.ntotal), "folded_version": int(meta["version"])}
        _commit_index(writer, index, new_info, bound=writer.next_id, clear_tombstones=removed)
        return action
    index, new_info = _build(writer, kind, params, settings.recall, train_size)
    new_info["reason"] = reason
    new_info["build_params"] = {k: v for k, v in params.items()}
    _commit_index(writer, index, new_info, bound=writer.next_id, clear_tombstones=True)
    return action


def _resolve(asked: str, n: int, dim: int, memory: int | None, params: dict | None) -> tuple[str, dict, str, int]:
    """(kind, params, reason, training sample size) for what was asked."""
    if asked == AUTO:
        from cir.index import choose_index

        choice = choose_index(n, dim, memory)
        return choice.kind, {**dict(choice.params), **(params or {})}, f"auto: {choice.reason}", choice.train_size
    if asked == FLAT:
        return FLAT, {}, "asked for", 0
    from cir.index import INDEX_KINDS

    if asked not in INDEX_KINDS:
        raise StoreError(f"unknown index kind {asked!r}; choose one of {', '.join([AUTO, *INDEX_KINDS])}")
    return asked, dict(params or {}), "asked for", TRAIN_SAMPLE


def _live_rows(writer: "StoreWriter", first_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of the live items with id >= ``first_id``, checked against their checksums (a damaged row
    would be laundered into the index)."""
    rows = writer.rows
    row_ids = map_rowids(writer.rowids.path, rows)
    vectors = map_rows(writer.vectors.path, rows, writer.dim)
    removed = np.array([i for (i,) in writer.conn.execute("SELECT id FROM items WHERE removed IS NOT NULL")], np.int64)
    start = int(np.searchsorted(row_ids, first_id))
    blocks = checksums.read_blocks(writer.conn, 0, rows)
    damaged = checksums.damaged_rows(vectors, blocks, 0, rows)
    damaged = damaged[damaged >= start]
    keep = np.ones(rows - start, bool)
    if len(removed):
        keep[np.searchsorted(row_ids, removed[removed >= first_id]) - start] = False
    if len(damaged) and keep[damaged - start].any():
        raise StoreDamaged(f"the store at {writer.root} holds damaged vectors; building an index would hide the damage: "
                           f"run `cir repair --store {writer.root}` first")
    return np.asarray(row_ids[start:])[keep], vectors[start:][keep] if not keep.all() else vectors[start:]


def _add(index: "VectorIndex", vectors: np.ndarray, ids: np.ndarray) -> None:
    for start in range(0, len(ids), ADD_CHUNK):
        index.add(np.ascontiguousarray(vectors[start : start + ADD_CHUNK], np.float32), ids[start : start + ADD_CHUNK])


def _build(writer: "StoreWriter", kind: str, params: dict, recall: float,
           train_size: int) -> tuple["VectorIndex", dict]:
    from cir.index import build_index

    ids, vectors = _live_rows(writer)
    index = build_index(kind, writer.dim, **params)
    trained_on = 0
    if index.needs_training:
        size = max(1, min(train_size or TRAIN_SAMPLE, len(ids)))
        step = max(1, len(ids) // size)
        sample = np.ascontiguousarray(vectors[::step][:size], np.float32)
        index.train(sample)
        trained_on = len(sample)
    _add(index, vectors, ids)
    info = {"kind": kind, "factory": index.factory, "params": dict(index.params), "exact": bool(index.exact),
            "needs_training": bool(index.needs_training), "trained_on": trained_on, "ntotal": int(index.ntotal),
            "built_version": int(writer.meta()["version"])}
    if not index.exact and len(ids) > 10:
        info["tuning"] = _tune(index, vectors, ids, recall)
        info["params"] = dict(index.params)  # with the tuned search parameters
    return index, info


def _tune(index: "VectorIndex", vectors: np.ndarray, ids: np.ndarray, recall: float) -> dict:
    """Tune the search parameters on stored vectors (an even stride) used as queries against exact search, each
    query's own item left out of both sides: a stored vector finds itself first, which a real query does not."""
    import faiss

    from cir.index import tune_index

    step = max(1, len(ids) // TUNE_QUERIES)
    rows = np.arange(0, len(ids), step)[:TUNE_QUERIES]
    queries = np.ascontiguousarray(vectors[rows], np.float32)
    k = min(10, len(ids) - 1)
    _, positions = faiss.knn(queries, np.ascontiguousarray(vectors), k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    exact_ids = np.stack([row_ids[row_ids != ids[r]][:k] for r, row_ids in zip(rows, ids[positions])])
    tuning = tune_index(index, queries, exact_ids, recall=recall, k=k, exclude=ids[rows])
    if tuning.params:
        index.set_search_params(**tuning.params)
    return {"params": dict(tuning.params), "recall": float(tuning.recall), "lower": float(tuning.lower),
            "p50_ms": float(tuning.p50_ms), "target": recall, "reached": bool(tuning.reached),
            "queries": len(queries), "k": k}


def _load_for_fold(writer: "StoreWriter", name: str) -> "VectorIndex":
    from cir.index import load_index

    return load_index(str(writer.root / name), mmap=False)


def _commit_index(writer: "StoreWriter", index: "VectorIndex | None", info: dict, bound: int,
                  clear_tombstones: bool) -> None:
    meta = writer.meta()
    serial = int(meta.get("index_serial", 0)) + 1
    name = ""
    if index is not None:
        name = index_name(serial)
        tmp = writer.root / (name + ".tmp")
        index.save(str(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, writer.root / name)
        fsync_dir(writer.root)
    try:
        with db.write_transaction(writer.conn):
            db.set_meta(writer.conn, {"index_file": name, "index_bound": bound, "index_serial": serial,
                                      "index_info": json.dumps(info, sort_keys=True)})
            if clear_tombstones:
                writer.conn.execute("DELETE FROM tombstones")
            db.bump_versions(writer.conn, rows=writer.rows)
    except BaseException:
        if name:
            (writer.root / name).unlink(missing_ok=True)
        raise
    old = meta.get("index_file") or ""
    if old and writer.checkpointed():
        (writer.root / old).unlink(missing_ok=True)
        fsync_dir(writer.root)


def remove_orphan_index_files(root: Path, meta: dict[str, str], checkpointed) -> None:
    """Index files meta does not name: of an interrupted write (newer, or ``.tmp``) or replaced ones whose
    replacement a reader's checkpoint held up (deleted once ``checkpointed()``)."""
    current = meta.get("index_file") or ""
    serial = int(meta.get("index_serial", 0))
    removed = False
    safe: bool | None = None
    for entry in os.listdir(root):
        m = INDEX_PATTERN.match(entry)
        if not m or entry == current:
            continue
        if int(m.group(1)) <= serial and not m.group(2):
            safe = checkpointed() if safe is None else safe
            if not safe:
                continue
        (root / entry).unlink(missing_ok=True)
        removed = True
    if removed:
        fsync_dir(root)


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def parse_memory(text: str) -> int:
    """``4G``, ``512M``, ``1.5GiB``, ``1000000`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text or "")
    if not m:
        raise StoreError(f"cannot read the memory budget {text!r}; write it as a number of bytes or with K, M, G or T "
                         "(e.g. 4G)")
    power = "kmgt".find(m.group(2).lower()) + 1 if m.group(2) else 0
    return int(float(m.group(1)) * 1024 ** power)
